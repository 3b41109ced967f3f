"""The built-in SageMaker target-tracking policy: requests, checks, diffs and CLI text.

Pure functions. The policy must be named exactly `SageMakerEndpointInvocationScalingPolicy`
with the predefined metric `SageMakerVariantInvocationsPerInstance`; under any other name
AWS creates a *custom* policy that the SageMaker console shows as an opaque black box.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tuner.config import POLICY_NAME, PREDEFINED_METRIC
from tuner.errors import InputError

__all__ = [
    "DIMENSION",
    "NAMESPACE",
    "POLICY_CONTENT_KEYS",
    "SUSPEND_KEYS",
    "ApplyPlan",
    "builtin_policy",
    "check_age",
    "check_change",
    "check_requests",
    "cli_commands",
    "current_target_value",
    "describe_policy",
    "dynamic_suspension",
    "make_plan",
    "plan_changes",
    "policy_put_args",
    "resolve_capacity",
    "resource_id",
    "resumed_flags",
    "scalable_target_request",
    "scaling_policy_request",
    "state_differences",
    "state_fingerprint",
    "stored_mismatches",
    "suspended_flags",
]

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def scalable_target_request(resource: str, min_capacity: int, max_capacity: int) -> dict:
    return {"ServiceNamespace": NAMESPACE, "ResourceId": resource,
            "ScalableDimension": DIMENSION, "MinCapacity": min_capacity,
            "MaxCapacity": max_capacity}


def scaling_policy_request(resource: str, target_value: float, scale_in_cooldown: int,
                           scale_out_cooldown: int) -> dict:
    return {
        "PolicyName": POLICY_NAME,
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource,
        "ScalableDimension": DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": target_value,
            "PredefinedMetricSpecification": {"PredefinedMetricType": PREDEFINED_METRIC},
            "ScaleInCooldown": scale_in_cooldown,
            "ScaleOutCooldown": scale_out_cooldown,
            "DisableScaleIn": False,
        },
    }


def check_requests(target: dict, policy: dict) -> None:
    """Refuse what moto would store and AWS would reject, or what would make no sense."""
    low, high = target["MinCapacity"], target["MaxCapacity"]
    if low < 1:
        raise InputError(f"min capacity {low} must be at least 1 for a real-time endpoint")
    if high < low:
        raise InputError(f"max capacity {high} is below min capacity {low}: raise max or "
                         "lower min")
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    value = config["TargetValue"]
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InputError(f"target value {value!r} must be a positive finite number")
    for key in ("ScaleInCooldown", "ScaleOutCooldown"):
        if not 0 <= config[key] <= 3600:
            raise InputError(f"{key} {config[key]} must be 0-3600 seconds")
    if policy["PolicyName"] != POLICY_NAME:
        raise InputError(f"policy name must be exactly {POLICY_NAME}")


def resolve_capacity(min_capacity: int | None, max_capacity: int | None,
                     current_target: dict | None) -> tuple[int, int]:
    """Use the flags; fall back to the variant's registered min/max, never to a guess."""
    low = min_capacity if min_capacity is not None else (
        current_target["MinCapacity"] if current_target else None)
    high = max_capacity if max_capacity is not None else (
        current_target["MaxCapacity"] if current_target else None)
    if low is None or high is None:
        raise InputError("the variant has no scalable target yet: pass --min-capacity and "
                         "--max-capacity")
    if high < low:
        raise InputError(f"max capacity {high} is below min capacity {low}: raise "
                         "--max-capacity or lower --min-capacity")
    return low, high


def builtin_policy(policies: list[dict]) -> dict | None:
    return next((p for p in policies if p.get("PolicyName") == POLICY_NAME), None)


def _policy_view(policy: dict | None) -> dict | None:
    if policy is None:
        return None
    config = policy.get("TargetTrackingScalingPolicyConfiguration", {})
    metric = config.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType")
    return {"TargetValue": config.get("TargetValue"), "PredefinedMetricType": metric,
            "ScaleInCooldown": config.get("ScaleInCooldown"),
            "ScaleOutCooldown": config.get("ScaleOutCooldown"),
            "DisableScaleIn": config.get("DisableScaleIn", False)}


def _target_view(target: dict | None) -> dict | None:
    if target is None:
        return None
    return {"MinCapacity": target.get("MinCapacity"), "MaxCapacity": target.get("MaxCapacity")}


def plan_changes(current_target: dict | None, current_policies: list[dict],
                 target: dict, policy: dict) -> list[dict[str, Any]]:
    """Field-by-field differences between what is stored and what would be written."""
    changes = []
    for scope, now, then in (
        ("scalable target", _target_view(current_target), _target_view(target)),
        (POLICY_NAME, _policy_view(builtin_policy(current_policies)), _policy_view(policy)),
    ):
        assert then is not None
        for key, value in then.items():
            old = None if now is None else now.get(key)
            if old != value:
                changes.append({"scope": scope, "field": key, "current": old, "proposed": value})
    return changes


def stored_mismatches(stored_target: dict | None, stored_policies: list[dict],
                      target: dict, policy: dict,
                      suspended: dict | None = None) -> list[str]:
    """What AWS reports back that differs from what was sent (empty when all is stored).

    `suspended` is the SuspendedState sent with the target, if one was.
    """
    problems = [f"{c['scope']} {c['field']}: stored {c['current']!r}, sent {c['proposed']!r}"
                for c in plan_changes(stored_target, stored_policies, target, policy)]
    if suspended is not None and suspended_flags(stored_target) != suspended:
        problems.append(f"scalable target SuspendedState: stored "
                        f"{suspended_flags(stored_target)!r}, sent {suspended!r}")
    stored = builtin_policy(stored_policies)
    if stored is not None and stored.get("PolicyType") != "TargetTrackingScaling":
        problems.append(f"policy type is {stored.get('PolicyType')}, not TargetTrackingScaling")
    return problems


SUSPEND_KEYS = ("DynamicScalingInSuspended", "DynamicScalingOutSuspended",
                "ScheduledScalingSuspended")


def suspended_flags(target: dict | None) -> dict[str, bool]:
    """A target's SuspendedState with every flag present (AWS omits nothing, moto may)."""
    stored = (target or {}).get("SuspendedState") or {}
    return {key: bool(stored.get(key, False)) for key in SUSPEND_KEYS}


def dynamic_suspension(target: dict | None) -> list[str]:
    """Which directions of dynamic scaling are suspended ('scale-in', 'scale-out')."""
    flags = suspended_flags(target)
    return [name for name, key in (("scale-in", "DynamicScalingInSuspended"),
                                   ("scale-out", "DynamicScalingOutSuspended")) if flags[key]]


def resumed_flags(target: dict | None) -> dict[str, bool]:
    """The SuspendedState that lets target tracking act; scheduled scaling left as it was."""
    return {**suspended_flags(target), "DynamicScalingInSuspended": False,
            "DynamicScalingOutSuspended": False}


def cli_commands(target: dict, policy: dict, region: str | None) -> str:
    """The `aws application-autoscaling` commands that do the same by hand."""
    region_flag = f" \\\n  --region {shlex.quote(region)}" if region else ""
    config = {
        "TargetValue": policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"],
        **{k: v for k, v in policy["TargetTrackingScalingPolicyConfiguration"].items()
           if k != "TargetValue"},
    }
    return (
        "aws application-autoscaling register-scalable-target \\\n"
        f"  --service-namespace {target['ServiceNamespace']} \\\n"
        f"  --resource-id {shlex.quote(target['ResourceId'])} \\\n"
        f"  --scalable-dimension {target['ScalableDimension']} \\\n"
        f"  --min-capacity {target['MinCapacity']} --max-capacity {target['MaxCapacity']}"
        f"{region_flag}\n\n"
        "aws application-autoscaling put-scaling-policy \\\n"
        f"  --policy-name {policy['PolicyName']} \\\n"
        f"  --service-namespace {policy['ServiceNamespace']} \\\n"
        f"  --resource-id {shlex.quote(policy['ResourceId'])} \\\n"
        f"  --scalable-dimension {policy['ScalableDimension']} \\\n"
        f"  --policy-type {policy['PolicyType']} \\\n"
        f"  --target-tracking-scaling-policy-configuration "
        f"{shlex.quote(json.dumps(config))}{region_flag}\n\n"
        "aws application-autoscaling describe-scaling-policies \\\n"
        f"  --service-namespace {NAMESPACE} --resource-id {shlex.quote(policy['ResourceId'])}"
        f"{region_flag}\n"
    )


def describe_policy(policy: dict) -> str:
    """What a stored scaling policy does, in one line (for the plan's custom-policy list)."""
    kind = policy.get("PolicyType", "?")
    name = policy.get("PolicyName", "?")
    if kind == "TargetTrackingScaling":
        config = policy.get("TargetTrackingScalingPolicyConfiguration", {})
        predefined = config.get("PredefinedMetricSpecification", {})
        custom = config.get("CustomizedMetricSpecification", {})
        metric = predefined.get("PredefinedMetricType") or (
            f"custom metric {custom.get('Namespace', '?')}/{custom.get('MetricName', '?')}")
        extra = ", scale-in disabled" if config.get("DisableScaleIn") else ""
        return (f"{name}: target tracking on {metric} at {config.get('TargetValue')} "
                f"(cooldowns in {config.get('ScaleInCooldown', '-')} s / out "
                f"{config.get('ScaleOutCooldown', '-')} s{extra})")
    if kind == "StepScaling":
        config = policy.get("StepScalingPolicyConfiguration", {})
        steps = ", ".join(f"{s.get('ScalingAdjustment'):+d}" for s in
                          config.get("StepAdjustments", []))
        return (f"{name}: step scaling ({config.get('AdjustmentType', '?')} {steps or '-'}, "
                f"cooldown {config.get('Cooldown', '-')} s) driven by its CloudWatch alarm")
    return f"{name}: {kind}"


def current_target_value(policies: list[dict]) -> float | None:
    builtin = builtin_policy(policies)
    if builtin is None:
        return None
    return builtin.get("TargetTrackingScalingPolicyConfiguration", {}).get("TargetValue")


def check_change(policies: list[dict], policy: dict, max_change: float, force: bool) -> None:
    """A target moving more than `max_change` from the current built-in one needs --force."""
    current = current_target_value(policies)
    proposed = policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
    if current is None or current <= 0 or force:
        return
    change = (proposed - current) / current
    if abs(change) > max_change:
        raise InputError(f"target {proposed:g} changes {change:+.0%} from the current "
                         f"{current:g} (limit ±{max_change:.0%}): check the run, then pass "
                         "--force to apply anyway")


def check_age(recommended_at: datetime, now: datetime, max_age: timedelta, force: bool) -> None:
    """A stale measurement needs --force: the model or traffic may have changed since."""
    age = now - recommended_at
    if age > max_age and not force:
        raise InputError(f"the recommendation is {age.days} days {age.seconds // 3600} h old "
                         f"(limit {max_age}): re-measure, or pass --force to apply it anyway")


@dataclass(frozen=True)
class ApplyPlan:
    """Everything an apply would write, decided before any write."""

    target: dict
    policy: dict
    current_target: dict | None
    current_policies: list[dict]
    changes: list[dict]
    custom_policies: list[dict]
    delete_policies: list[str]
    # The SuspendedState to register with the target when dynamic scaling is suspended and
    # the apply resumes it (a policy that never acts is no policy); None: leave it as it is.
    resume_scaling: dict | None = None

    @property
    def no_changes(self) -> bool:
        return not self.changes and not self.delete_policies

    def lines(self) -> list[str]:
        out = [f"Plan for {self.target['ResourceId']}:"]
        current = self.current_target
        if current is None:
            out.append("  scalable target: none registered")
        else:
            out.append(f"  scalable target: min {current.get('MinCapacity')}, max "
                       f"{current.get('MaxCapacity')}, suspended "
                       f"{current.get('SuspendedState') or {}}")
        for stored in self.current_policies:
            out.append(f"  policy {describe_policy(stored)}")
        if self.no_changes:
            out.append("  no changes")
        for change in self.changes:
            if change["field"] == "SuspendedState":
                out.append(self._resume_line())
                continue
            out.append(f"  ~ {change['scope']} {change['field']}: {change['current']!r} -> "
                       f"{change['proposed']!r}")
        paused = dynamic_suspension(current)
        if paused and self.resume_scaling is None:
            out.append(f"  ! dynamic scaling ({' and '.join(paused)}) is suspended: no policy "
                       "acts until it is resumed (kept suspended as asked)")
        if self.custom_policies:
            out.append(f"  ! {len(self.custom_policies)} other policy(ies) on this variant: "
                       "target-tracking policies combine (scale out if any wants to, scale in "
                       "only if all agree)")
            for name in self.delete_policies:
                out.append(f"  - delete {name} (--replace-custom)")
            if not self.delete_policies:
                out.append("    pass --replace-custom to delete them once the built-in policy "
                           "is in place")
        return out

    def _resume_line(self) -> str:
        paused = " and ".join(dynamic_suspension(self.current_target))
        scheduled = ("stays suspended" if suspended_flags(self.current_target)
                     ["ScheduledScalingSuspended"] else "stays active")
        return (f"  ~ resume dynamic scaling: {paused} suspended (since when, AWS does not "
                "record), so no scaling policy acts; the target is registered again with it "
                f"resumed (scheduled scaling {scheduled})")

    def to_dict(self) -> dict:
        return {"changes": self.changes,
                "custom_policies": [describe_policy(p) for p in self.custom_policies],
                "delete_policies": self.delete_policies, "no_changes": self.no_changes,
                "current_target": self.current_target, "resume_scaling": self.resume_scaling}


def make_plan(current_target: dict | None, current_policies: list[dict], target: dict,
              policy: dict, replace_custom: bool, resume_scaling: bool = True) -> ApplyPlan:
    """What an apply would write. Suspended dynamic scaling is a change to make (resume it)
    unless `resume_scaling` is False: the policy is written to act, not to sit idle."""
    customs = [p for p in current_policies if p.get("PolicyName") != POLICY_NAME]
    changes = plan_changes(current_target, current_policies, target, policy)
    resume = None
    if resume_scaling and dynamic_suspension(current_target):
        resume = resumed_flags(current_target)
        changes.append({"scope": "scalable target", "field": "SuspendedState",
                        "current": suspended_flags(current_target), "proposed": resume})
    return ApplyPlan(
        target=target, policy=policy, current_target=current_target,
        current_policies=current_policies, changes=changes, custom_policies=customs,
        delete_policies=[p["PolicyName"] for p in customs] if replace_custom else [],
        resume_scaling=resume,
    )


POLICY_CONTENT_KEYS = ("PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension",
                       "PolicyType", "TargetTrackingScalingPolicyConfiguration",
                       "StepScalingPolicyConfiguration", "PredictiveScalingPolicyConfiguration")


def policy_put_args(policy: dict) -> dict:
    """A stored policy as the PutScalingPolicy call that recreates it (no ARN, alarms...)."""
    return {k: policy[k] for k in POLICY_CONTENT_KEYS if k in policy}


def state_fingerprint(target: dict | None, policies: list[dict]) -> dict:
    """What 'the same scaling state' means: content, not ARNs or creation times."""
    return {
        "target": None if target is None else {
            "MinCapacity": target.get("MinCapacity"), "MaxCapacity": target.get("MaxCapacity"),
            "SuspendedState": target.get("SuspendedState")},
        "policies": {p["PolicyName"]: policy_put_args(p) for p in policies},
    }


def state_differences(before: dict, now: dict) -> list[str]:
    """How two `state_fingerprint`s differ, one short phrase per difference."""
    old_target, new_target = before["target"], now["target"]
    out = []
    if old_target is None and new_target is not None:
        out.append("a scalable target was registered")
    elif old_target is not None and new_target is None:
        out.append("the scalable target was deregistered")
    elif old_target is not None and new_target is not None:
        for key in ("MinCapacity", "MaxCapacity"):
            if old_target[key] != new_target[key]:
                out.append(f"{key} {old_target[key]} -> {new_target[key]}")
        if suspended_flags(old_target) != suspended_flags(new_target):
            out.append(f"SuspendedState {suspended_flags(old_target)} -> "
                       f"{suspended_flags(new_target)}")
    old_policies, new_policies = before["policies"], now["policies"]
    out += [f"policy {name} added" for name in new_policies if name not in old_policies]
    out += [f"policy {name} removed" for name in old_policies if name not in new_policies]
    out += [f"policy {name} changed" for name in old_policies
            if name in new_policies and old_policies[name] != new_policies[name]]
    return out
