import json
import math

import pytest

from tuner.errors import InputError
from tuner.scaling.policy import (
    check_requests,
    cli_commands,
    plan_changes,
    resolve_capacity,
    scalable_target_request,
    scaling_policy_request,
    stored_mismatches,
)

RID = "endpoint/ep/variant/AllTraffic"


def requests(target=6000.0, low=1, high=4):
    return (scalable_target_request(RID, low, high),
            scaling_policy_request(RID, target, 300, 300))


def test_policy_is_the_builtin_one():
    _, policy = requests()
    assert policy["PolicyName"] == "SageMakerEndpointInvocationScalingPolicy"
    assert policy["PolicyType"] == "TargetTrackingScaling"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert policy["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"


@pytest.mark.parametrize(("target", "low", "high"), [
    (-1.0, 1, 4), (0.0, 1, 4), (math.inf, 1, 4), (math.nan, 1, 4), (10.0, 3, 2), (10.0, 0, 2)])
def test_invalid_requests_are_refused(target, low, high):
    with pytest.raises(InputError):
        check_requests(*requests(target, low, high))


def test_capacity_falls_back_to_registered_target_but_never_guesses():
    assert resolve_capacity(None, None, {"MinCapacity": 2, "MaxCapacity": 8}) == (2, 8)
    assert resolve_capacity(1, None, {"MinCapacity": 2, "MaxCapacity": 8}) == (1, 8)
    with pytest.raises(InputError, match="--min-capacity and --max-capacity"):
        resolve_capacity(None, None, None)
    with pytest.raises(InputError, match="below min"):
        resolve_capacity(None, 1, {"MinCapacity": 2, "MaxCapacity": 8})


def test_plan_lists_changes_and_nothing_when_equal():
    target, policy = requests()
    changes = plan_changes(None, [], target, policy)
    assert {c["field"] for c in changes} >= {"MinCapacity", "MaxCapacity", "TargetValue"}
    assert plan_changes(target, [policy], target, policy) == []
    moved = plan_changes(target, [policy], target, requests(target=5000.0)[1])
    assert moved == [{"scope": "SageMakerEndpointInvocationScalingPolicy",
                      "field": "TargetValue", "current": 6000.0, "proposed": 5000.0}]


def test_stored_mismatch_is_reported():
    target, policy = requests()
    stored = json.loads(json.dumps(policy))
    stored["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] = 1.0
    assert stored_mismatches(target, [stored], target, policy)
    assert stored_mismatches(target, [policy], target, policy) == []


def test_cli_commands_reproduce_the_same_calls():
    text = cli_commands(*requests(), region="us-east-1")
    assert "register-scalable-target" in text and "put-scaling-policy" in text
    assert "--policy-name SageMakerEndpointInvocationScalingPolicy" in text
    assert '"TargetValue": 6000.0' in text
    assert "--min-capacity 1 --max-capacity 4" in text


def test_suspended_dynamic_scaling_is_planned_as_a_resume_not_as_no_change():
    from tuner.scaling.policy import make_plan

    target, policy = requests()
    stored = {**target, "SuspendedState": {"DynamicScalingInSuspended": True,
                                           "DynamicScalingOutSuspended": True,
                                           "ScheduledScalingSuspended": False}}
    plan = make_plan(stored, [policy], target, policy, replace_custom=False)
    assert not plan.no_changes
    assert plan.resume_scaling == {"DynamicScalingInSuspended": False,
                                   "DynamicScalingOutSuspended": False,
                                   "ScheduledScalingSuspended": False}
    assert any(line.startswith("  ~ resume dynamic scaling: scale-in and scale-out suspended")
               for line in plan.lines())
    kept = make_plan(stored, [policy], target, policy, replace_custom=False,
                     resume_scaling=False)
    assert kept.no_changes and kept.resume_scaling is None
    assert any("is suspended: no policy acts" in line for line in kept.lines())
    assert make_plan(target, [policy], target, policy, replace_custom=False).no_changes


def test_state_differences_name_each_change():
    from tuner.scaling.policy import state_differences, state_fingerprint

    target, policy = requests()
    before = state_fingerprint(target, [policy])
    assert state_differences(before, before) == []
    moved = state_fingerprint({**target, "MaxCapacity": 9}, [])
    assert state_differences(before, moved) == [
        "MaxCapacity 4 -> 9", f"policy {policy['PolicyName']} removed"]
    assert state_differences(state_fingerprint(None, []), before)[0] == \
        "a scalable target was registered"
