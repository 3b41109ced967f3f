import json
from datetime import UTC, datetime

import pandas as pd

from tuner.config import build_config
from tuner.measure.analysis import StepResult, derive_target, estimate_capacity, pool_by_rate
from tuner.measure.loadtest import sla_of
from tuner.report.render import render_markdown, write_report
from tuner.report.result import SCHEMA_VERSION, build_result
from tuner.scaling.apply import ApplyOutcome
from tuner.scaling.aws import ScalingState
from tuner.scaling.policy import make_plan, scalable_target_request, scaling_policy_request

REQUIRED = {"endpoint", "variant", "region", "sla", "instances_under_test", "steps",
            "max_sustainable_rps", "max_rps_per_instance", "safety_factor",
            "target_invocations_per_instance", "policy", "applied", "load_test_seconds"}
STEP_KEYS = {"offered_rps", "achieved_rps", "requests", "errors", "error_rate", "p50_ms",
             "p90_ms", "p99_ms", "passed"}


def sample_result():
    config = build_config({}, {"endpoint": "ep", "sla_latency_ms": 100, "url": "http://x:1"})
    steps = [StepResult(i, "ramp", r, min(r, 210), 1000, 0, 0.0, 20, lat, lat * 2, lat,
                        0 if v == "pass" else 900, 5, 1, v)
             for i, (r, lat, v) in enumerate([(50, 20, "pass"), (100, 22, "pass"),
                                              (200, 30, "pass"), (400, 900, "fail")])]
    capacity = estimate_capacity(steps, sla_of(config))
    rec = derive_target(capacity.max_sustainable_rps, 1, 0.5)
    rid = config.resource_id
    target = scalable_target_request(rid, 1, 4)
    policy = scaling_policy_request(rid, rec.target_invocations_per_instance, 300, 300)
    plan = make_plan(None, [], target, policy, replace_custom=False)
    outcome = ApplyOutcome("applied", plan, ScalingState(None, []),
                           ScalingState(target, [policy]))
    return build_result(
        config=config, region="us-east-1", instances_under_test=1, steps=steps,
        load_seconds=20.0, search_stop_reason="search complete", capacity=capacity,
        recommendation=rec, apply=outcome, before=ScalingState(None, []), error=None,
        started_at=datetime.now(UTC))


def test_result_has_the_documented_keys():
    result = sample_result().to_json()
    assert result["schema_version"] == SCHEMA_VERSION
    assert set(result) >= REQUIRED
    assert set(result["steps"][0]) >= STEP_KEYS
    assert result["target_invocations_per_instance"] == round(
        result["max_rps_per_instance"] * 60 * 0.5, 2)


def test_report_files_are_written_and_self_contained(tmp_path):
    result = sample_result()
    paths = write_report(tmp_path, result)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "SageMakerEndpointInvocationScalingPolicy" in html
    assert json.loads(paths["result"].read_text())["endpoint"] == "ep"
    assert len(pd.read_csv(paths["steps"])) == 4
    assert "put-scaling-policy" in (tmp_path / "aws-cli.sh").read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_markdown_states_target_and_steps():
    text = render_markdown(sample_result().to_json())
    assert "invocations per instance per minute" in text
    assert text.count("| ramp |") == 4


def test_the_report_shows_each_rates_pooled_verdict_beside_the_steps_own():
    """A step that passed on its own requests while its rate, pooled with a later step at
    the same rate, did not: the steps table alone showed a pass above the reported last
    pass. The verdicts by rate say what the capacity rests on."""
    config = build_config({}, {"endpoint": "ep", "sla_latency_ms": 100, "url": "http://x:1"})
    sla = sla_of(config)
    rows = [(50, 0, "pass"), (100, 50, "pass"), (400, 900, "fail"), (100, 150, "fail")]
    steps = [StepResult(i, "ramp" if i < 3 else "extend", r, r, 1000, 0, 0.0, 20, 50, 90, 50,
                        slow, 5, 1, v) for i, (r, slow, v) in enumerate(rows)]
    rates = pool_by_rate(steps, sla)
    capacity = estimate_capacity(steps, sla)
    assert capacity.last_pass_rps == 50  # the step at 100 rps passed alone, its rate did not
    result = build_result(
        config=config, region="us-east-1", instances_under_test=1, steps=steps,
        load_seconds=20.0, search_stop_reason="search complete", capacity=capacity,
        recommendation=derive_target(capacity.last_pass_rps, 1, 0.5), apply=None,
        before=ScalingState(None, []), error=None, started_at=datetime.now(UTC),
        rates=tuple(rate.to_dict() for rate in rates)).to_json()
    assert [r["offered_rps"] for r in result["search"]["rates"]] == [50, 100, 400]
    pooled = result["search"]["rates"][1]
    assert pooled["steps"] == [1, 3] and pooled["requests"] == 2000 and pooled["slow"] == 200
    assert pooled["verdict"] != "pass"
    text = render_markdown(result)
    assert "## Verdicts by rate" in text and "what it showed alone when it ran" in text
    row = next(line for line in text.splitlines() if line.startswith("| 100 | 1, 3 |"))
    assert f"| {pooled['verdict']} |" in row and "200 (10.0%)" in row


def test_a_report_recorded_before_the_rates_table_renders_without_it():
    result = sample_result().to_json()
    del result["search"]["rates"]
    assert "Verdicts by rate" not in render_markdown(result)
