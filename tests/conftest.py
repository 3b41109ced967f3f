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
import inspect  # noqa: E402

import botocore.client  # noqa: E402
import botocore.hooks  # noqa: E402
import botocore.session  # noqa: E402
import botocore.utils  # noqa: E402
import pytest  # noqa: E402

# tuner.scaling.aws.client (and moto's helpers) open a new boto3 session for every client, and each
# session parses botocore's service models again: ~0.3 s per client, most of a moto test's
# time. One parsed copy per data path, shared by every session, as within one session.
botocore.session.create_loader = functools.cache(botocore.session.create_loader)

# What else a session builds again for every client, and builds the same each time: the
# client class of a service (its ~400 methods for SageMaker; the class holds no state: a
# client's events, credentials and endpoint are its instance's) and the alias of each event
# name (botocore caches it per session).
_client_classes: dict = {}
_create_client_class = botocore.client.ClientCreator._create_client_class


def _shared_client_class(self, service_name, service_model):
    if service_name == "s3":  # boto3 adds S3's transfer methods to the class per session
        return _create_client_class(self, service_name, service_model)
    key = (service_name, service_model.api_version)
    if key not in _client_classes:
        _client_classes[key] = _create_client_class(self, service_name, service_model)
    return _client_classes[key]


botocore.client.ClientCreator._create_client_class = _shared_client_class

_aliases: dict = {}
_alias_event_name = botocore.hooks.EventAliaser._alias_event_name


def _shared_alias(self, event_name):
    if self._event_aliases is not botocore.utils.EVENT_ALIASES:
        return _alias_event_name(self, event_name)
    if event_name not in _aliases:
        _aliases[event_name] = _alias_event_name(self, event_name)
    return _aliases[event_name]


botocore.hooks.EventAliaser._alias_event_name = _shared_alias

# Every handler a session registers is checked for **kwargs by reading its signature: the
# same few hundred functions for every session.
_accepts_kwargs = botocore.hooks.accepts_kwargs


@functools.cache
def _function_accepts_kwargs(function) -> bool:
    return _accepts_kwargs(function)


def _handler_accepts_kwargs(handler) -> bool:
    function = getattr(handler, "__func__", handler)
    if inspect.isfunction(function):  # module-level code: cached without growing per client
        return _function_accepts_kwargs(function)
    return _accepts_kwargs(handler)  # a callable object made per client: read it each time


botocore.hooks.accepts_kwargs = _handler_accepts_kwargs

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
