"""The `tuner` command as a user runs it: exit codes, stderr, stdout's last line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.servers import create_endpoint, moto_server

TUNER = [sys.executable, "-m", "tuner.cli"]
AWS_CLI = Path(sys.executable).parent / "aws"


def run(args, env=None, timeout=300):
    return subprocess.run(TUNER + args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def local_aws():
    with moto_server() as url:
        env = {"AWS_ENDPOINT_URL": url}
        old = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = url
        try:
            create_endpoint("cli-ep")
        finally:
            if old is None:
                os.environ.pop("AWS_ENDPOINT_URL")
            else:
                os.environ["AWS_ENDPOINT_URL"] = old
        yield env


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
    assert not any(tmp_path.iterdir())


def test_tune_applies_the_builtin_policy_and_the_aws_cli_reads_it_back(
        tmp_path, local_aws, server_200):
    done = run(["tune", "--endpoint", "cli-ep", "--sla-latency-ms", "100", "--url",
                server_200.url, "--min-capacity", "1", "--max-capacity", "4",
                "--start-rps", "40", "--max-test-seconds", "20",
                "--reports-dir", str(tmp_path)], env=local_aws)
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


def test_runtime_api_path_signs_and_invokes_through_aws_endpoint_url(tmp_path, local_aws):
    """No --url: load goes through InvokeEndpoint (boto3 in Locust) to the moto server."""
    done = run(["tune", "--endpoint", "cli-ep", "--sla-latency-ms", "1000", "--start-rps", "10",
                "--max-rps", "40", "--max-test-seconds", "15", "--dry-run",
                "--min-capacity", "1", "--max-capacity", "2",
                "--reports-dir", str(tmp_path)], env=local_aws)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["target_kind"] == "sagemaker-runtime"
    assert result["instances_under_test"] == 1
    assert sum(s["requests"] for s in result["steps"]) > 100
    assert all(s["errors"] == 0 for s in result["steps"])
    assert not result["applied"]
