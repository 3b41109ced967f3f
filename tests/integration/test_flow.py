"""The Prefect flow end to end: real Locust against the bundled server, moto for AWS."""

import json
import shutil
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from flows.tune import tune_endpoint
from tuner.config import build_config
from tuner.demo.servers import create_endpoint
from tuner.errors import InputError
from tuner.report.regenerate import regenerate_report

# Flows run in-process against the one Prefect test server of the session.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

RID = "endpoint/ep/variant/AllTraffic"


@pytest.fixture
def aws():
    with mock_aws():
        create_endpoint("ep")
        yield boto3.client("application-autoscaling", region_name="us-east-1")


def config(server, tmp_path, **extra):
    # Evenly spaced arrivals on a constant-time server: a deterministic truth (200 rps) for
    # testing the plumbing; accuracy under Poisson arrivals is the simulation tests' and the
    # benchmark's. From 45 rps the doublings (90, 180, 360) step off the 200 rps saturation.
    return build_config({}, {"endpoint": "ep", "url": server.url, "sla_latency_ms": 100,
                             "start_rps": 45, "max_test_seconds": 20, "min_capacity": 1,
                             "max_capacity": 3, "reports_dir": tmp_path,
                             "arrivals": "uniform", **extra})


@pytest.fixture(scope="module")
def two_runs(prefect_harness, server_200, tmp_path_factory):
    """Two runs of one endpoint into one reports directory, the AWS state read after each:
    a dry run against a server 25% slower on an endpoint that does not scale yet, then an
    applied run on the 200 rps server. Read by the flow test, the history test and the
    dry-run test: two flow runs, not three."""
    from tuner.demo.servers import model_server

    reports = tmp_path_factory.mktemp("reports")
    with mock_aws():
        create_endpoint("ep")
        client = boto3.client("application-autoscaling", region_name="us-east-1")

        def state():
            return {"targets": client.describe_scalable_targets(
                        ServiceNamespace="sagemaker")["ScalableTargets"],
                    "policies": client.describe_scaling_policies(
                        ServiceNamespace="sagemaker")["ScalingPolicies"]}

        with model_server(slots=3, service_ms=20.0) as slower:  # 150 rps: -25%
            dry = tune_endpoint(config(slower, reports, dry_run=True, max_test_seconds=15))
        after_dry = state()
        applied = tune_endpoint(config(server_200, reports))
        after_applied = state()
    return reports, dry, after_dry, applied, after_applied


def test_flow_measures_applies_and_reports(two_runs, tmp_path):
    reports, dry, _, result, aws_state = two_runs
    assert result.applied
    policies = aws_state["policies"]
    assert [p["PolicyName"] for p in policies] == ["SageMakerEndpointInvocationScalingPolicy"]
    assert policies[0]["ResourceId"] == RID
    stored = policies[0]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
    assert stored == result.target_invocations_per_instance
    low, high = result.capacity_ci
    assert low <= result.max_sustainable_rps <= high
    assert stored == pytest.approx(low * 60 * 0.5, abs=0.01)  # target rests on the lower end
    assert result.policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == stored
    run_dir = Path(result.run_dir)
    # One new run directory beside the dry run's, none reused.
    assert sorted(p for p in (reports / "ep").iterdir() if p.is_dir()) == sorted(
        [Path(dry.run_dir), run_dir])
    assert (reports / "ep" / "audit.jsonl").exists()
    for name in ("result.json", "steps.csv", "report.md", "report.html", "aws-cli.sh",
                 "scaling.tf", "scaling-cfn.yaml", "run.json", "locust/samples.csv"):
        assert (run_dir / name).exists(), name
    assert f"{run_dir.name}/report.html" in (reports / "index.html").read_text()

    # `tuner report` rebuilds the same numbers from the raw data alone (on a copy: the
    # shared run stays as the flow wrote it)
    only = tmp_path / "copy" / "ep" / run_dir.name
    shutil.copytree(run_dir, only)
    original = json.loads((only / "result.json").read_text())
    (only / "report.html").unlink()
    again = regenerate_report(only).to_json()
    for key in ("steps", "max_sustainable_rps", "capacity_ci", "max_rps_per_instance",
                "target_invocations_per_instance", "policy", "applied", "finished_at"):
        assert again[key] == original[key], key
    assert (only / "report.html").exists()


def test_history_across_two_runs_flags_drift(two_runs):
    from tuner.report.history import scan

    tmp_path, _, _, second, _ = two_runs
    # The 200 rps server after the 150 rps one: a capacity a third higher.
    assert second.drift["flagged"] and second.drift["change"] > 0.1
    entries = scan(tmp_path)
    assert len(entries) == 2 and entries[1].drifted
    page = (tmp_path / "index.html").read_text()
    assert all(f'href="{e.run_dir}/report.html"' in page for e in entries)
    assert "drift: more than 10%" in (tmp_path / entries[1].run_dir / "report.md").read_text()


def test_dry_run_writes_nothing_to_aws(two_runs):
    _, result, aws, _, _ = two_runs
    assert not result.applied
    assert result.changes  # it shows what it would do
    assert aws["targets"] == []
    assert aws["policies"] == []


def test_unknown_endpoint_is_an_input_error_and_writes_nothing(server_200, tmp_path, aws):
    with pytest.raises(InputError, match="not found"):
        tune_endpoint(config(server_200, tmp_path, endpoint="missing"))
    assert not any(tmp_path.iterdir())


def _baseline(tmp_path):
    """A baseline run of the 4 x 20 ms server with a p90 <= 100 ms SLA under evenly
    spaced arrivals: 200 rps per instance, shown down to 160."""
    import json

    run_dir = tmp_path / "baseline"
    run_dir.mkdir()
    (run_dir / "result.json").write_text(json.dumps({
        "endpoint": "ep", "instances_under_test": 1, "capacity_ci": [160.0, 240.0],
        "max_sustainable_rps": 200.0, "search": {"arrivals": "uniform"},
        "sla": {"percentile": 90, "latency_ms": 100, "max_error_rate": 0.01,
                "confidence": 0.95},
        "scalable_target": {"MinCapacity": 1, "MaxCapacity": 4}}))
    return run_dir


def test_validation_passes_an_equal_candidate(server_200, tmp_path):
    from flows.validate import validate_capacity
    from tuner.config import ValidateConfig

    result = validate_capacity(ValidateConfig(
        # 45 s: after the ramp (steps at 0.475, 0.95, 1.9 of the baseline) a bisect above
        # 0.95 fits as well.
        baseline=_baseline(tmp_path), url=server_200.url, max_test_seconds=45,
        expected_peak_rps=500, reports_dir=tmp_path / "reports"))
    assert result.validation["passed"]
    assert result.policy is None  # validation never proposes or writes a policy


def test_validation_fails_a_slower_candidate_with_a_report(tmp_path):
    import json

    from flows.validate import validate_capacity
    from tuner.config import ValidateConfig
    from tuner.demo.servers import model_server
    from tuner.errors import RunError

    # 100 rps: half the baseline's capacity
    with (model_server(slots=2, service_ms=20.0) as slower,
          pytest.raises(RunError, match="regressed") as failure):
        validate_capacity(ValidateConfig(
            baseline=_baseline(tmp_path), url=slower.url, max_test_seconds=20,
            reports_dir=tmp_path / "reports"))
    result = json.loads((tmp_path.joinpath(failure.value.run_dir) / "result.json").read_text())
    assert not result["validation"]["passed"]
    assert "regressed" in result["validation"]["reasons"][0]
    assert "Validation FAILED" in (tmp_path.joinpath(failure.value.run_dir)
                                   / "report.md").read_text()


def test_validation_checks_peak_capacity_before_measuring(tmp_path):
    import json

    from flows.validate import validate_capacity
    from tuner.config import ValidateConfig

    baseline = _baseline(tmp_path)
    result = json.loads((baseline / "result.json").read_text())
    del result["scalable_target"]
    (baseline / "result.json").write_text(json.dumps(result))
    reports = tmp_path / "reports"
    with pytest.raises(InputError, match="--expected-peak-rps needs --max-capacity"):
        validate_capacity(ValidateConfig(baseline=baseline, url="http://127.0.0.1:9",
                                         expected_peak_rps=500, reports_dir=reports))
    assert not reports.exists()  # refused before any run directory or load test
