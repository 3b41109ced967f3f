import re

import pytest
import yaml

from tuner.errors import InputError
from tuner.scaling.iac import render
from tuner.scaling.policy import scalable_target_request, scaling_policy_request

RID = "endpoint/my-ep/variant/AllTraffic"
TARGET = scalable_target_request(RID, 1, 4)
POLICY = scaling_policy_request(RID, 6012.5, 300, 120)


def hcl_blocks(text: str) -> list[tuple[str, str]]:
    """A small structural check: balanced braces, and the top-level resource blocks."""
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    return re.findall(r'^resource "(\w+)" "(\w+)" \{', text, flags=re.M)


def test_terraform_has_both_resources_and_the_exact_policy_name():
    text = render("terraform", TARGET, POLICY, "us-east-1")
    kinds = [kind for kind, _ in hcl_blocks(text)]
    assert kinds == ["aws_appautoscaling_target", "aws_appautoscaling_policy"]
    assert 'name               = "SageMakerEndpointInvocationScalingPolicy"' in text
    assert 'predefined_metric_type = "SageMakerVariantInvocationsPerInstance"' in text
    assert "target_value       = 6012.5" in text
    assert "scale_out_cooldown = 120" in text
    assert "min_capacity       = 1" in text and "max_capacity       = 4" in text


def test_cloudformation_parses_and_carries_the_exact_policy():
    doc = yaml.safe_load(render("cloudformation", TARGET, POLICY, "us-east-1"))
    resources = doc["Resources"]
    assert resources["VariantScalableTarget"]["Type"] == (
        "AWS::ApplicationAutoScaling::ScalableTarget")
    policy = resources["InvocationScalingPolicy"]
    assert policy["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
    props = policy["Properties"]
    assert props["PolicyName"] == "SageMakerEndpointInvocationScalingPolicy"
    config = props["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 6012.5
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance")
    assert resources["VariantScalableTarget"]["Properties"]["MaxCapacity"] == 4


def test_cli_format_and_unknown_format():
    assert "put-scaling-policy" in render("cli", TARGET, POLICY, "us-east-1")
    with pytest.raises(InputError, match="--format 'pulumi'"):
        render("pulumi", TARGET, POLICY, None)
