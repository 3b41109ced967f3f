"""The AWS adapters against moto (in-process)."""

import contextlib

import pytest

from tuner.demo.servers import create_endpoint
from tuner.errors import InputError
from tuner.scaling import aws

RID = "endpoint/ep/variant/AllTraffic"


@pytest.fixture
def moto(moto_aws):
    create_endpoint("ep", instances=2)
    yield


def test_describe_variant_reads_instance_count(moto):
    state = aws.describe_variant(aws.client("sagemaker", "us-east-1"), "ep", "AllTraffic")
    assert state.current_instance_count == 2
    assert state.endpoint_status == "InService"


def test_unknown_endpoint_and_variant_are_input_errors(moto):
    sagemaker = aws.client("sagemaker", "us-east-1")
    with pytest.raises(InputError, match="endpoint 'nope' not found"):
        aws.describe_variant(sagemaker, "nope", "AllTraffic")
    with pytest.raises(InputError, match="has no variant 'Blue'"):
        aws.describe_variant(sagemaker, "ep", "Blue")


def test_missing_region_is_explained(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(InputError, match="no AWS region"):
        aws.resolve_region(None)


def test_access_denied_names_the_action():
    from botocore.exceptions import ClientError

    error = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "nope"}},
                        "PutScalingPolicy")
    assert "application-autoscaling:PutScalingPolicy" in aws.explain(
        error, "application-autoscaling:PutScalingPolicy")


def _register(autoscaling, suspended):
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RID,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1,
        MaxCapacity=3, SuspendedState=suspended)
    return aws.read_scaling_state(autoscaling, RID).target


ORIGINAL = {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
            "ScheduledScalingSuspended": True}


@pytest.mark.parametrize("ending", [None, RuntimeError("load test failed"), KeyboardInterrupt()])
def test_scaling_is_suspended_during_the_test_and_restored_exactly(moto, ending):
    autoscaling = aws.client("application-autoscaling", "us-east-1")
    target = _register(autoscaling, ORIGINAL)
    expect = pytest.raises(type(ending)) if ending else contextlib.nullcontext()
    with expect, aws.dynamic_scaling_suspended(autoscaling, target):
        during = aws.read_scaling_state(autoscaling, RID).target["SuspendedState"]
        assert during == {**ORIGINAL, "DynamicScalingInSuspended": True,
                          "DynamicScalingOutSuspended": True}
        if ending:
            raise ending
    after = aws.read_scaling_state(autoscaling, RID).target
    assert after["SuspendedState"] == ORIGINAL
    assert (after["MinCapacity"], after["MaxCapacity"]) == (1, 3)


def test_already_suspended_scaling_is_left_alone(moto):
    autoscaling = aws.client("application-autoscaling", "us-east-1")
    state = {**ORIGINAL, "DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": True}
    target = _register(autoscaling, state)
    with aws.dynamic_scaling_suspended(autoscaling, target):
        pass
    assert aws.read_scaling_state(autoscaling, RID).target["SuspendedState"] == state
