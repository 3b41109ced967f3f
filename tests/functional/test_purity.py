"""The pure modules stay pure: importing one pulls in no AWS SDK, orchestrator, load
generator or plotting library, and each says what it exports.

The Locust subprocess imports the analysis, search and controller (and must not start
Prefect or boto3 in a gevent-patched process); the Prefect process imports them too (and
must never import Locust). Each module is imported in a fresh interpreter, since this
test process has loaded everything already.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PURE_MODULES = ("measure.analysis", "measure.search", "measure.stats", "measure.pacing",
                "measure.queueing", "measure.offline", "measure.queue_model",
                "measure.slow_correlation", "measure.wire", "measure.lanes",
                "measure.controller", "measure.payloads", "measure.payload_stats", "status",
                "inputs",
                "scaling.policy", "scaling.iac", "scaling.release_gate", "simulate.sweep")
# Each capability package says what it owns and what it holds; importing one loads nothing.
PACKAGES = ("measure", "scaling", "report", "simulate", "demo")
FORBIDDEN = ("boto3", "botocore", "prefect", "locust", "gevent", "matplotlib")

PROBE = ("import importlib, json, sys; "
         "[importlib.import_module(m) for m in sys.argv[1].split(',')]; "
         "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
         "& set(sys.argv[2:]))))")


def loaded_by(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    """The packages of `packages` that importing `modules` in a fresh interpreter loads."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, ",".join(modules), *packages],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_importing_the_pure_modules_loads_no_heavy_package():
    modules = [f"tuner.{name}" for name in PURE_MODULES]
    # All at once (one interpreter, seconds); what they load together, each loads at most.
    if loaded_by(modules, FORBIDDEN):
        culprits = {m: found for m in modules if (found := loaded_by([m], FORBIDDEN))}
        pytest.fail(f"importing these pure modules loads heavy packages: {culprits}")


def test_the_probe_sees_a_forbidden_import():
    """The probe itself works: a module that does import one is caught."""
    assert loaded_by(["tuner.scaling.policy"], ("pydantic",)) == ["pydantic"]


@pytest.mark.parametrize("name", PURE_MODULES)
def test_a_pure_module_declares_its_exports_and_has_them(name):
    module = importlib.import_module(f"tuner.{name}")
    exported = getattr(module, "__all__", None)
    assert exported, f"tuner.{name} declares no __all__"
    assert len(set(exported)) == len(exported)
    assert [n for n in exported if not hasattr(module, n)] == []


@pytest.mark.parametrize("name", PACKAGES)
def test_a_package_says_what_it_owns_lists_its_modules_and_imports_none(name):
    package_dir = ROOT / "tuner" / name
    modules = sorted(p.stem for p in package_dir.glob("*.py") if p.stem != "__init__")
    package = importlib.import_module(f"tuner.{name}")
    assert package.__doc__ and "Owns" in package.__doc__
    assert sorted(package.__all__) == modules
    # Importing the package alone loads none of its modules.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = (f"import sys, tuner.{name}; "
             f"print(sorted(m for m in sys.modules if m.startswith('tuner.{name}.')))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
