"""The `tuner` command as a user runs it: exit codes, stderr, stdout's last line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import local_aws_with

pytestmark = pytest.mark.integration

TUNER = [sys.executable, "-m", "tuner.cli"]
AWS_CLI = Path(sys.executable).parent / "aws"


def run(args, env=None, timeout=300, merged=False):
    """`merged`: stderr into stdout, in the order a terminal shows them."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if merged else {
        "capture_output": True}
    return subprocess.run(TUNER + args, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **streams)


@pytest.fixture(scope="module")
def local_aws():
    with local_aws_with("cli-ep") as url:
        yield {"AWS_ENDPOINT_URL": url}


@pytest.mark.parametrize(("args", "fragment"), [
    (["--min-capacity", "3", "--max-capacity", "2"], "below --min-capacity"),
    (["--safety-factor", "1.5"], "--safety-factor"),
    (["--safety-factor", "0"], "--safety-factor"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, fragment):
    done = run(["tune", "--endpoint", "ep", "--sla-latency-ms", "100", "--url",
                "http://127.0.0.1:9", "--reports-dir", str(tmp_path)] + args)
    assert done.returncode == 2
    assert fragment in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_unknown_endpoint_exits_2(tmp_path, local_aws, server_200):
    done = run(["tune", "--endpoint", "nope", "--sla-latency-ms", "100", "--url",
                server_200.url, "--min-capacity", "1", "--max-capacity", "2",
                "--reports-dir", str(tmp_path)], env=local_aws)
    assert done.returncode == 2, done.stderr
    assert "endpoint 'nope' not found" in done.stderr
    assert "temporary server" not in done.stderr  # said before Prefect started
    assert not any(tmp_path.iterdir())


def test_url_dry_run_measures_and_recommends_with_no_aws_at_all(tmp_path, server_200):
    """A container measured before it is deployed: no credentials, no endpoint."""
    no_aws = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
              "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
              "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    done = run(["tune", "--endpoint", "not-deployed-yet", "--sla-latency-ms", "100", "--url",
                server_200.url, "--dry-run", "--start-rps", "40", "--max-test-seconds", "10",
                "--arrivals", "uniform", "--reports-dir", str(tmp_path / "reports")],
               env=no_aws, merged=True)
    assert done.returncode == 0, done.stdout[-2000:]
    # The terminal's last line is the run directory, after Prefect's server has stopped.
    *before, last = done.stdout.strip().splitlines()
    assert any("Stopping temporary server" in line for line in before), done.stdout[-2000:]
    assert last.startswith(str(tmp_path / "reports")), done.stdout[-2000:]
    result = json.loads((Path(last) / "result.json").read_text())
    assert result["target_invocations_per_instance"] > 0
    assert "AWS not consulted" in result["aws_note"]
    assert result["apply_status"] == "dry-run" and not result["applied"]


def test_tune_applies_the_builtin_policy_and_the_aws_cli_reads_it_back(
        tmp_path, local_aws, server_200, prefect_api):
    done = run(["tune", "--endpoint", "cli-ep", "--sla-latency-ms", "100", "--url",
                server_200.url, "--min-capacity", "1", "--max-capacity", "4",
                # doublings at 90, 180, 360: the point lands near 180 (from 40 it
                # interpolated 160..320 to 166, 3% inside the tolerance)
                "--start-rps", "45", "--max-test-seconds", "20", "--arrivals", "uniform",
                "--reports-dir", str(tmp_path)], env={**local_aws, **prefect_api})
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["applied"]
    assert abs(result["max_sustainable_rps"] - 200) / 200 < 0.2
    shown = subprocess.run(
        [str(AWS_CLI), "application-autoscaling", "describe-scaling-policies",
         "--service-namespace", "sagemaker", "--resource-id",
         "endpoint/cli-ep/variant/AllTraffic", "--region", "us-east-1", "--output", "json"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **local_aws})
    assert shown.returncode == 0, shown.stderr
    (policy,) = json.loads(shown.stdout)["ScalingPolicies"]
    assert policy["PolicyName"] == "SageMakerEndpointInvocationScalingPolicy"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance")
    assert config["TargetValue"] == result["target_invocations_per_instance"]


def test_runtime_api_path_signs_and_invokes_through_aws_endpoint_url(tmp_path, local_aws,
                                                                    prefect_api):
    """No --url: SigV4-signed InvokeEndpoint calls over FastHttpUser reach the moto server."""
    done = run(["tune", "--endpoint", "cli-ep", "--sla-latency-ms", "1000", "--start-rps", "10",
                "--max-rps", "40", "--max-test-seconds", "20", "--dry-run",
                "--min-capacity", "1", "--max-capacity", "2",
                "--reports-dir", str(tmp_path)], env={**local_aws, **prefect_api})
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["target_kind"] == "sagemaker-runtime"
    assert result["instances_under_test"] == 1
    assert sum(s["requests"] for s in result["steps"]) > 100
    assert all(s["errors"] == 0 for s in result["steps"])
    assert not result["applied"]


def test_autoscaling_state_is_left_exactly_as_found_after_an_abort(tmp_path, local_aws,
                                                                  prefect_api):
    """Runtime API against moto (a few hundred rps at most): overload it so the first step
    aborts."""
    import boto3

    autoscaling = boto3.client("application-autoscaling", region_name="us-east-1",
                               endpoint_url=local_aws["AWS_ENDPOINT_URL"])
    rid = "endpoint/cli-ep/variant/AllTraffic"
    suspended = {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                 "ScheduledScalingSuspended": True}
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=rid,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1,
        MaxCapacity=3, SuspendedState=suspended)

    def state():
        target = autoscaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"][0]
        policies = autoscaling.describe_scaling_policies(
            ServiceNamespace="sagemaker", ResourceId=rid)["ScalingPolicies"]
        return (target["MinCapacity"], target["MaxCapacity"], target["SuspendedState"],
                [p["PolicyARN"] for p in policies])

    before = state()
    done = run(["tune", "--endpoint", "cli-ep", "--sla-latency-ms", "20", "--start-rps", "3000",
                "--max-test-seconds", "12", "--dry-run", "--reports-dir", str(tmp_path)],
               env={**local_aws, **prefect_api})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    loadtest = json.loads((run_dir / "locust" / "loadtest.json").read_text())
    assert loadtest["steps"][0]["abort_reason"], loadtest["steps"][0]
    assert state() == before
    assert (run_dir / "report.html").exists()


def _run_dir(tmp_path, finished_at=None):
    """A run directory as `tuner tune --dry-run` leaves it, for endpoint cli-ep."""
    from datetime import UTC, datetime

    from tuner.scaling.policy import scalable_target_request, scaling_policy_request

    rid = "endpoint/cli-ep/variant/AllTraffic"
    run_dir = tmp_path / "cli-ep" / "20260101T000000Z"
    run_dir.mkdir(parents=True)
    result = {"endpoint": "cli-ep", "variant": "AllTraffic", "region": "us-east-1",
              "sla": {"percentile": 90.0, "latency_ms": 100.0, "max_error_rate": 0.01},
              "finished_at": (finished_at or datetime.now(UTC)).isoformat(),
              "scalable_target": scalable_target_request(rid, 1, 2),
              "policy": scaling_policy_request(rid, 4321.0, 300, 300)}
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir


def test_apply_a_past_run_then_again_is_idempotent_and_audited(tmp_path, local_aws):
    run_dir = _run_dir(tmp_path)
    dry = run(["apply", str(run_dir), "--dry-run"], env=local_aws)
    assert dry.returncode == 0, dry.stderr
    assert "Plan for endpoint/cli-ep/variant/AllTraffic" in dry.stdout
    assert dry.stdout.strip().endswith("result: dry-run")
    first = run(["apply", str(run_dir)], env=local_aws)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith("result: applied")
    second = run(["apply", str(run_dir)], env=local_aws)
    assert second.stdout.strip().endswith("result: no-change")
    audit = [json.loads(line) for line in
             (tmp_path / "cli-ep" / "audit.jsonl").read_text().splitlines()]
    assert [a["result"] for a in audit] == ["dry-run", "applied", "no-change"]


def test_apply_refuses_a_stale_recommendation_with_exit_2(tmp_path, local_aws):
    from datetime import UTC, datetime, timedelta

    run_dir = _run_dir(tmp_path, finished_at=datetime.now(UTC) - timedelta(days=9))
    done = run(["apply", str(run_dir)], env=local_aws)
    assert done.returncode == 2
    assert "old" in done.stderr and "--force" in done.stderr


def test_apply_and_export_reject_a_directory_that_is_not_a_run(tmp_path):
    for command in (["apply", str(tmp_path)], ["export", str(tmp_path)]):
        done = run(command)
        assert done.returncode == 2
        assert "not a run directory" in done.stderr


def test_export_prints_parseable_cloudformation(tmp_path):
    import yaml

    done = run(["export", str(_run_dir(tmp_path)), "--format", "cloudformation"])
    assert done.returncode == 0, done.stderr
    props = yaml.safe_load(done.stdout)["Resources"]["InvocationScalingPolicy"]["Properties"]
    assert props["PolicyName"] == "SageMakerEndpointInvocationScalingPolicy"


def _measured_run_dir(tmp_path):
    """A run directory with real-looking steps (capacity 200 rps on one instance)."""
    from tests.unit.test_report import sample_result
    from tuner.report.render import write_report

    result = sample_result()
    rid = "endpoint/cli-ep/variant/AllTraffic"  # the recommendation is for that endpoint too
    result = result.published(endpoint="cli-ep",
                              scalable_target={**result.scalable_target, "ResourceId": rid},
                              policy={**result.policy, "ResourceId": rid})
    run_dir = tmp_path / "cli-ep" / "20260101T000000Z"
    run_dir.mkdir(parents=True)
    write_report(run_dir, result)
    return run_dir


def _daily_csv(tmp_path):
    import math
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 11, 1, tzinfo=UTC)
    lines = ["timestamp,invocations"]
    for minute in range(0, 2 * 1440, 1):
        load = 12_000 + 10_000 * math.sin(2 * math.pi * minute / 1440)
        lines.append(f"{(start + timedelta(minutes=minute)).isoformat()},{load:.0f}")
    path = tmp_path / "traffic.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_simulate_prints_json_summary_and_writes_into_the_report(tmp_path):
    run_dir = _measured_run_dir(tmp_path)
    done = run(["simulate", str(run_dir), "--traffic", str(_daily_csv(tmp_path)), "--json",
                "--max-capacity", "10", "--price-per-instance-hour", "0.5"])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {"instance_hours", "violation_minutes", "peak_instances", "scaling_actions",
            "recommended_target"} <= set(summary)
    assert summary["peak_instances"] >= 3  # 22,000/min peak over a 6,000 target
    record = json.loads((run_dir / "simulation.json").read_text())
    assert len(record["timeline"]) == 2 * 1440
    assert (run_dir / "simulation-timeline.png").exists()
    assert (run_dir / "simulation-sweep.png").exists()
    report = (run_dir / "report.md").read_text()
    assert "## Simulation on real traffic" in report and "0.5 rule" in report
    assert (run_dir / "report.html").read_text().count("data:image/png") == 4


def test_simulate_rejects_bad_traffic_with_exit_2(tmp_path):
    run_dir = _measured_run_dir(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("when,how_many\n1,2\n")
    done = run(["simulate", str(run_dir), "--traffic", str(bad)])
    assert done.returncode == 2
    assert "timestamp,invocations" in done.stderr


def test_simulate_fetches_cloudwatch_traffic(tmp_path, local_aws):
    from datetime import UTC, datetime, timedelta

    import boto3

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1",
                              endpoint_url=local_aws["AWS_ENDPOINT_URL"])
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cloudwatch.put_metric_data(Namespace="AWS/SageMaker", MetricData=[
        {"MetricName": "Invocations", "Value": 9000.0 if m % 60 < 30 else 2000.0,
         "Timestamp": now - timedelta(minutes=m),
         "Dimensions": [{"Name": "EndpointName", "Value": "cli-ep"},
                        {"Name": "VariantName", "Value": "AllTraffic"}]}
        for m in range(1, 121)])
    run_dir = _measured_run_dir(tmp_path)
    done = run(["simulate", str(run_dir), "--traffic", "cloudwatch", "--days", "1", "--json"],
               env=local_aws)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["scaling_actions"] >= 1
    assert "CloudWatch" in json.loads((run_dir / "simulation.json").read_text())["traffic"]


def test_validate_needs_exactly_one_candidate(tmp_path):
    done = run(["validate", "--baseline", str(tmp_path)])
    assert done.returncode == 2
    assert "exactly one of --url" in done.stderr
