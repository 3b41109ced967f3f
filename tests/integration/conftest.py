"""Fixtures of the integration tier: real processes, shared across the whole session."""

from __future__ import annotations

import contextlib
import os

import pytest

from tuner.demo.servers import create_endpoint, model_server, moto_server


@pytest.fixture(scope="session")
def server_200():
    """The bundled model server with a true capacity of 200 rps (4 slots x 20 ms)."""
    with model_server(slots=4, service_ms=20.0) as server:
        yield server


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server (~20 s to start) for every flow run of the session: the
    flows run in-process and `tuner` subprocesses reach it through `prefect_api`.

    Started by the first test that asks for it, not by tests that never run a flow.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_api(prefect_harness) -> dict[str, str]:
    """The environment pointing a `tuner` subprocess at the session's Prefect server, as a
    user's `PREFECT_API_URL` would: its flow then starts no temporary server of its own
    (~10 s of every CLI run). The tests of the temporary server's own lifecycle (the last
    line printed after it stops; a signal stopping it) leave this out and start one."""
    from prefect.settings import PREFECT_API_URL

    return {"PREFECT_API_URL": PREFECT_API_URL.value()}


@contextlib.contextmanager
def local_aws_with(endpoint: str):
    """A moto server holding `endpoint`; yields its URL (subprocesses get it through
    $AWS_ENDPOINT_URL, this process is left pointing where it pointed)."""
    with moto_server() as url:
        old = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = url
        try:
            create_endpoint(endpoint)
        finally:
            if old is None:
                os.environ.pop("AWS_ENDPOINT_URL")
            else:
                os.environ["AWS_ENDPOINT_URL"] = old
        yield url
