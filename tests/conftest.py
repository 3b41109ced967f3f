"""Test environment: no network, Prefect state inside the project, dummy AWS credentials.

Set before anything imports Prefect or boto3.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".state" / "prefect"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE"):
    os.environ.pop(key, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"

import functools  # noqa: E402

import botocore.session  # noqa: E402
import pytest  # noqa: E402

# tuner.aws.client (and moto's helpers) open a new boto3 session for every client, and each
# session parses botocore's service models again: ~0.3 s per client, most of a moto test's
# time. One parsed copy per data path, shared by every session, as within one session.
botocore.session.create_loader = functools.cache(botocore.session.create_loader)

from tuner.servers import model_server  # noqa: E402


@pytest.fixture(scope="session")
def server_200():
    """The bundled model server with a true capacity of 200 rps (4 slots x 20 ms)."""
    with model_server(slots=4, service_ms=20.0) as server:
        yield server
