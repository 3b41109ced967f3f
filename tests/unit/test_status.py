"""Status values as enums with the JSON values files have always held."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_report import sample_result
from tuner.config import build_config
from tuner.measure.loadtest import build_plan
from tuner.status import ApplyStatus, EndState, TargetKind


def test_the_values_are_the_strings_old_runs_hold():
    assert [s.value for s in ApplyStatus] == ["applied", "no-change", "dry-run", "refused",
                                              "failed", "not attempted"]
    assert [s.value for s in EndState] == ["unchanged", "new", "previous", "partial",
                                           "unknown"]
    assert [k.value for k in TargetKind] == ["url", "sagemaker-runtime"]
    assert [s for s in ApplyStatus if s.is_error] == [ApplyStatus.REFUSED, ApplyStatus.FAILED]


def test_result_json_writes_plain_strings_that_read_back_as_members():
    written = json.loads(json.dumps(sample_result().to_json()))
    assert written["target_kind"] == "url"
    assert json.dumps([ApplyStatus.NOT_ATTEMPTED, EndState.NEW]) == '["not attempted", "new"]'
    assert ApplyStatus(written["apply_status"]) is ApplyStatus.APPLIED


def test_the_load_plan_and_the_result_name_an_endpoint_target_alike(tmp_path: Path):
    """Before: the plan said "sagemaker", result.json "sagemaker-runtime"."""
    config = build_config({}, {"endpoint": "ep", "sla_latency_ms": 100})
    plan = json.loads(json.dumps(build_plan(config, tmp_path, "us-east-1")))
    assert plan["target"]["kind"] == TargetKind.SAGEMAKER_RUNTIME == "sagemaker-runtime"
