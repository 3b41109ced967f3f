"""The Prefect flow end to end: real Locust against the bundled server, moto for AWS."""

import boto3
import pytest
from moto import mock_aws
from prefect.testing.utilities import prefect_test_harness

from flows.tune import tune_endpoint
from tuner.config import build_config
from tuner.errors import InputError
from tuner.servers import create_endpoint

RID = "endpoint/ep/variant/AllTraffic"


@pytest.fixture(scope="module", autouse=True)
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def aws():
    with mock_aws():
        create_endpoint("ep")
        yield boto3.client("application-autoscaling", region_name="us-east-1")


def config(server, tmp_path, **extra):
    return build_config({}, {"endpoint": "ep", "url": server.url, "sla_latency_ms": 100,
                             "start_rps": 40, "max_test_seconds": 20, "min_capacity": 1,
                             "max_capacity": 3, "reports_dir": tmp_path, **extra})


def test_flow_measures_applies_and_reports(server_200, tmp_path, aws):
    result = tune_endpoint(config(server_200, tmp_path))
    assert result["applied"]
    policies = aws.describe_scaling_policies(ServiceNamespace="sagemaker",
                                             ResourceId=RID)["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == ["SageMakerEndpointInvocationScalingPolicy"]
    stored = policies[0]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
    assert stored == result["target_invocations_per_instance"]
    low, high = result["capacity_ci"]
    assert low <= result["max_sustainable_rps"] <= high
    assert stored == pytest.approx(low * 60 * 0.5, abs=0.01)  # target rests on the lower end
    assert result["policy"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == stored
    run_dir = tmp_path / "ep"
    (only,) = list(run_dir.iterdir())
    for name in ("result.json", "steps.csv", "report.md", "report.html", "aws-cli.sh",
                 "locust/samples.csv"):
        assert (only / name).exists(), name


def test_dry_run_writes_nothing_to_aws(server_200, tmp_path, aws):
    result = tune_endpoint(config(server_200, tmp_path, dry_run=True, max_test_seconds=12))
    assert not result["applied"]
    assert result["changes"]  # it shows what it would do
    assert aws.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert aws.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []


def test_unknown_endpoint_is_an_input_error_and_writes_nothing(server_200, tmp_path, aws):
    with pytest.raises(InputError, match="not found"):
        tune_endpoint(config(server_200, tmp_path, endpoint="missing"))
    assert not any(tmp_path.iterdir())
