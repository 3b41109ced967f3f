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

# tuner.scaling.aws.client (and moto's helpers) open a new boto3 session for every client, and each
# session parses botocore's service models again: ~0.3 s per client, most of a moto test's
# time. One parsed copy per data path, shared by every session, as within one session.
botocore.session.create_loader = functools.cache(botocore.session.create_loader)

TIERS = ("unit", "functional", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep directories and markers in step, so that `-m "not integration"` and
    `tests/unit tests/functional` select the same tests: every test lives in a tier's
    directory, and exactly those in tests/integration carry the `integration` marker."""
    problems = []
    for item in items:
        try:
            tier = item.path.relative_to(ROOT / "tests").parts[0]
        except ValueError:
            continue  # not one of ours (a path outside tests/ given on the command line)
        marked = item.get_closest_marker("integration") is not None
        if tier not in TIERS:
            problems.append(f"{item.nodeid}: move it into tests/{{{','.join(TIERS)}}}/")
        elif marked != (tier == "integration"):
            fix = "add" if tier == "integration" else "remove"
            problems.append(f"{item.nodeid}: {fix} the `integration` marker "
                            "(pytestmark = pytest.mark.integration)")
    if problems:
        raise pytest.UsageError("tests out of their tier:\n  " + "\n  ".join(problems))
