"""result.json as one typed record: written once, read back by every command, old runs too.

`tests/fixtures/run-schema-1/` holds a run directory as `tuner demo` left it on 2026-11-30,
before result.json carried a schema version (result.json and run.json; not its raw samples).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tuner.config import ValidateConfig
from tuner.errors import InputError
from tuner.measure.analysis import Sla
from tuner.report.history import scan
from tuner.report.past_run import load_run
from tuner.report.result import SCHEMA_VERSION, RunResult
from tuner.scaling.iac import render
from tuner.simulate.command import SimulationOptions, model_target, scaling_model
from tuner.simulate.sweep import curve_from_result
from tuner.status import ApplyStatus, TargetKind

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run-schema-1"
RUN = Path("demo-endpoint") / "20261130T095634Z"


@pytest.fixture
def old_reports(tmp_path) -> Path:
    reports = tmp_path / "reports"
    shutil.copytree(FIXTURE, reports)
    return reports


def old_json() -> dict:
    return json.loads((FIXTURE / RUN / "result.json").read_text())


def test_the_fixture_is_a_schema_1_record():
    assert "schema_version" not in old_json()


def test_an_old_run_reads_as_a_typed_record():
    result = RunResult.from_json(old_json())
    assert (result.endpoint, result.variant, result.region) == (
        "demo-endpoint", "AllTraffic", "us-east-1")
    assert result.sla == Sla(90.0, 100.0, 0.01, 0.95)
    assert result.target_kind is TargetKind.URL
    assert result.apply_status is ApplyStatus.APPLIED and result.applied
    assert result.capacity_ci == (180.079, 190.119)
    assert result.max_sustainable_rps == 185.099
    assert result.target_invocations_per_instance == 5402.37
    assert len(result.steps) == len(old_json()["steps"]) > 0
    assert result.queue_model is not None and result.queue_model["curve"]


def test_an_old_run_written_back_keeps_every_key_and_value_and_gains_the_version():
    old = old_json()
    written = RunResult.from_json(old).to_json()
    assert written.pop("schema_version") == SCHEMA_VERSION == 2
    assert written == old
    assert RunResult.from_json(json.loads(json.dumps(written))) == RunResult.from_json(old)


def test_every_command_reads_an_old_run_directory(old_reports):
    run_dir = old_reports / RUN
    # apply and export
    result = load_run(run_dir)
    assert "SageMakerEndpointInvocationScalingPolicy" in render(
        "cloudformation", result.scalable_target, result.policy, result.region)
    # simulate
    assert curve_from_result(result).capacity_rps_per_instance == pytest.approx(
        min(180.079, result.queue_model["poisson_capacity_rps"]))
    assert scaling_model(result, SimulationOptions(traffic="x.csv")).target == model_target(
        result) == 5402.37
    # validate --baseline
    from tuner.report.baseline import candidate_tune_config, read_baseline

    baseline = read_baseline(run_dir)
    config = candidate_tune_config(ValidateConfig(baseline=run_dir, url="http://127.0.0.1:9"),
                                   baseline)
    assert (config.sla_percentile, config.sla_latency_ms) == (90.0, 100.0)
    assert config.payloads is None  # recorded before payload sets: the default body
    # A baseline that recorded its payload set: the candidate sends that very set.
    from tuner.measure.loadtest import write_payload_set
    from tuner.measure.payloads import single_payload_set

    saved = write_payload_set(single_payload_set(b"{}", "application/json", "b.json"),
                              run_dir / "locust")
    config = candidate_tune_config(ValidateConfig(baseline=run_dir, url="http://127.0.0.1:9"),
                                   baseline)
    assert config.payloads == str(saved)
    saved.unlink()
    # the history index
    (entry,) = scan(old_reports)
    assert (entry.run_dir, entry.capacity_rps, entry.target) == (str(RUN), 185.099, 5402.37)


def test_a_record_from_a_newer_tool_is_refused_in_one_line(old_reports):
    path = old_reports / RUN / "result.json"
    path.write_text(json.dumps({**old_json(), "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(InputError, match="newer than this endpoint-tuner reads.*upgrade") as err:
        load_run(old_reports / RUN)
    assert "\n" not in str(err.value)
    assert scan(old_reports) == []  # the index leaves out what it cannot read


def test_a_newer_record_says_upgrade_even_when_other_checks_would_fail_first(old_reports):
    """The version is checked before anything else: a newer file may lack or retype
    what this version needs, and 'no recommendation' would be the wrong advice."""
    from tuner.report.baseline import read_baseline

    path = old_reports / RUN / "result.json"
    newer = {**old_json(), "schema_version": SCHEMA_VERSION + 1, "region": 7}
    del newer["policy"], newer["capacity_ci"]
    path.write_text(json.dumps(newer))
    for reader in (load_run, read_baseline):
        with pytest.raises(InputError, match="newer than this endpoint-tuner reads"):
            reader(old_reports / RUN)


def test_a_result_nested_absurdly_deep_is_refused_in_one_line(old_reports):
    """Recursive readers (rendering, json_safe) would crash on it: refused on reading."""
    path = old_reports / RUN / "result.json"
    path.write_text(json.dumps({**old_json(), "plan": json.loads("[" * 500 + "]" * 500)}))
    with pytest.raises(InputError, match="nests deeper than 64 levels"):
        load_run(old_reports / RUN)
    assert scan(old_reports) == []


def test_keys_this_version_does_not_know_are_kept():
    record = RunResult.from_json({**old_json(), "schema_version": 2, "from_later": [1]})
    assert record.extra == {"from_later": [1]}
    assert record.to_json()["from_later"] == [1]


@pytest.mark.parametrize(("change", "fragment"), [
    ({"sla": None}, "sla"),
    ({"capacity_ci": [1.0]}, "capacity_ci"),
    ({"apply_status": "maybe"}, "apply_status"),
    ({"steps": "none"}, "steps"),
])
def test_a_field_of_the_wrong_type_is_one_line_naming_it(change, fragment):
    with pytest.raises(InputError, match=fragment) as err:
        RunResult.from_json({**old_json(), **change}, "result.json")
    assert "\n" not in str(err.value)


def test_publishing_adds_facts_as_a_new_record():
    record = RunResult.from_json(old_json())
    published = record.published(run_dir="elsewhere", drift=None)
    assert published.run_dir == "elsewhere" and record.run_dir != "elsewhere"
    with pytest.raises(TypeError, match="no field"):
        record.published(runn_dir="typo")
