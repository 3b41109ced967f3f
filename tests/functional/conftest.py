"""Fixtures of the functional tier: AWS through moto, in-process."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def _moto_patched():
    """moto's patching of botocore, once per test process for this tier (~40 ms per
    `mock_aws()` start); undone when the tier's tests end, so that a run of several tiers
    leaves the integration tier's own `mock_aws()` blocks unnested (they reset on entry)."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def moto_aws(_moto_patched):
    """An empty moto AWS for one test, as a fresh `mock_aws()` gives: every backend's state
    is wiped before and after it."""
    from moto.core.base_backend import BackendDict

    BackendDict.reset()
    yield
    BackendDict.reset()


@pytest.fixture
def hook_autoscaling(monkeypatch):
    """`hook_autoscaling(before=..., after=...)`: every client the code under test makes
    (`tuner.scaling.aws.client`) calls these botocore handlers around each of its
    Application Auto Scaling calls: to record the calls, or to inject faults."""
    from tuner.scaling import aws

    def install(before=None, after=None) -> None:
        original = aws.client

        def hooked_client(service, region):
            client = original(service, region)
            for stage, handler in (("before-call", before), ("after-call", after)):
                if handler is not None:
                    client.meta.events.register(f"{stage}.application-autoscaling.*", handler)
            return client

        monkeypatch.setattr(aws, "client", hooked_client)
    return install
