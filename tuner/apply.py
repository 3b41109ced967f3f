"""Safe apply: plan, guardrails, write, verify, roll back, audit.

As trustworthy as `terraform apply`: the plan is computed and shown before any write; a plan
with no changes writes nothing; guardrails refuse (exit 2) before anything is written; a
failed write or verification restores the previous scalable target and policies exactly
(exit 1); and every outcome, refusals included, is appended to the endpoint's audit log.
`tuner tune` and `tuner apply RUN_DIR` both come through `safe_apply`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tuner import aws
from tuner.config import TUNE_LIMITS
from tuner.errors import InputError, RunError, TunerError
from tuner.inputs import Limit, number_problem, show
from tuner.policy import (
    ApplyPlan,
    check_age,
    check_change,
    check_requests,
    make_plan,
    policy_put_args,
    state_fingerprint,
    stored_mismatches,
)
from tuner.result import read_result
from tuner.runfiles import ApplyRecord, checked


@dataclass(frozen=True)
class ApplyOptions:
    dry_run: bool = False
    replace_custom: bool = False
    force: bool = False
    max_change: float = 0.5
    max_age: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class ApplyOutcome:
    """How an apply ended: status is applied, no-change, dry-run, refused or failed."""

    status: str
    plan: ApplyPlan | None
    before: aws.ScalingState | None
    after: aws.ScalingState | None = None
    error: str | None = None
    exit_code: int = 0

    @property
    def applied(self) -> bool:
        return self.status == "applied"


def write_plan(autoscaling: Any, plan: ApplyPlan) -> aws.ScalingState:
    """Register, put the built-in policy, verify; then delete custom policies, verify again."""
    resource = plan.target["ResourceId"]
    aws.call("application-autoscaling:RegisterScalableTarget",
             autoscaling.register_scalable_target, **plan.target)
    aws.call("application-autoscaling:PutScalingPolicy", autoscaling.put_scaling_policy,
             **plan.policy)
    after = aws.read_scaling_state(autoscaling, resource)
    problems = stored_mismatches(after.target, after.policies, plan.target, plan.policy)
    if problems:
        raise RunError("AWS stored something other than what was sent: " + "; ".join(problems))
    for name in plan.delete_policies:
        aws.call("application-autoscaling:DeleteScalingPolicy",
                 autoscaling.delete_scaling_policy, PolicyName=name,
                 ServiceNamespace=plan.target["ServiceNamespace"], ResourceId=resource,
                 ScalableDimension=plan.target["ScalableDimension"])
    if plan.delete_policies:
        after = aws.read_scaling_state(autoscaling, resource)
        left = [p["PolicyName"] for p in after.policies]
        if left != [plan.policy["PolicyName"]]:
            raise RunError(f"after --replace-custom the variant still has policies {left}")
    return after


def restore(autoscaling: Any, before: aws.ScalingState, target: dict) -> None:
    """Put the variant's scaling back exactly as `before`; RunError if that fails."""
    key = {k: target[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")}
    now = aws.read_scaling_state(autoscaling, key["ResourceId"])
    wanted = {p["PolicyName"]: policy_put_args(p) for p in before.policies}
    for stored in now.policies:
        if stored["PolicyName"] not in wanted:
            aws.call("application-autoscaling:DeleteScalingPolicy",
                     autoscaling.delete_scaling_policy, PolicyName=stored["PolicyName"], **key)
    if before.target is None:
        if now.target is not None:
            aws.call("application-autoscaling:DeregisterScalableTarget",
                     autoscaling.deregister_scalable_target, **key)
    else:
        aws.call("application-autoscaling:RegisterScalableTarget",
                 autoscaling.register_scalable_target, **key,
                 MinCapacity=before.target["MinCapacity"],
                 MaxCapacity=before.target["MaxCapacity"],
                 **({"SuspendedState": before.target["SuspendedState"]}
                    if before.target.get("SuspendedState") else {}))
    current = {p["PolicyName"]: policy_put_args(p) for p in now.policies}
    for name, args in wanted.items():
        if current.get(name) != args:
            aws.call("application-autoscaling:PutScalingPolicy",
                     autoscaling.put_scaling_policy, **args)
    restored = aws.read_scaling_state(autoscaling, key["ResourceId"])
    if state_fingerprint(restored.target, restored.policies) != state_fingerprint(
            before.target, before.policies):
        raise RunError("rollback incomplete: the variant's scaling differs from before; "
                       "compare it with the audit log's 'before' and fix by hand")


def caller_identity(region: str) -> str:
    """The caller's ARN for the audit log (never credentials)."""
    try:
        return aws.client("sts", region).get_caller_identity()["Arn"]
    except Exception as exc:  # the audit must not fail the apply
        return f"unknown ({aws.explain(exc, 'sts:GetCallerIdentity')})"


def append_audit(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        log.write(json.dumps(record, default=str) + "\n")


def safe_apply(*, region: str, target: dict, policy: dict, recommended_at: datetime,
               options: ApplyOptions, audit_path: Path,
               say: Callable[[str], None] = lambda line: None) -> ApplyOutcome:
    """Plan, check, write, verify, roll back on failure; audit every outcome."""
    autoscaling = aws.client("application-autoscaling", region)
    before: aws.ScalingState | None = None
    plan: ApplyPlan | None = None

    def finish(status: str, after: aws.ScalingState | None = None, error: str | None = None,
               exit_code: int = 0) -> ApplyOutcome:
        append_audit(audit_path, {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "caller": caller_identity(region),
            "resource_id": target["ResourceId"], "region": region,
            "action": "dry-run" if options.dry_run else "apply", "result": status,
            "error": error, "plan": plan.to_dict() if plan else None,
            "before": before.to_dict() if before else None,
            "after": after.to_dict() if after else None,
        })
        return ApplyOutcome(status, plan, before, after, error, exit_code)

    try:
        check_requests(target, policy)
        before = aws.read_scaling_state(autoscaling, target["ResourceId"])
        plan = make_plan(before.target, before.policies, target, policy, options.replace_custom)
        for line in plan.lines():
            say(line)
        try:
            check_age(recommended_at, datetime.now(UTC), options.max_age, options.force)
            check_change(before.policies, policy, options.max_change, options.force)
        except InputError as guard:
            if not options.dry_run:
                raise
            # A dry run previews: it says what an apply would need instead of refusing.
            say(f"an apply would be refused: {guard}")
    except InputError as exc:
        return finish("refused", error=str(exc), exit_code=2)
    except TunerError as exc:
        return finish("failed", error=str(exc), exit_code=exc.exit_code)
    if options.dry_run:
        say("dry run: nothing written")
        return finish("dry-run")
    if plan.no_changes:
        say("no changes: nothing written")
        return finish("no-change", after=before)
    try:
        after = write_plan(autoscaling, plan)
    except Exception as exc:  # any failure mid-write: restore what was there
        reason = str(exc)
        try:
            restore(autoscaling, before, target)
        except TunerError as rollback_error:
            return finish("failed", error=f"{reason}; {rollback_error}", exit_code=1)
        say("write failed: the previous scaling configuration was restored")
        return finish("failed", after=before,
                      error=f"{reason}; rolled back to the previous state", exit_code=1)
    say(f"applied and verified {policy['PolicyName']}")
    return finish("applied", after=after)


def parse_age(text: str) -> timedelta:
    """'7d', '36h', '90m' or a plain number of days."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    raw = text.strip().lower()
    try:
        if raw and raw[-1] in units:
            value = float(raw[:-1])
            unit = units[raw[-1]]
        else:
            value, unit = float(raw), "days"
    except ValueError:
        raise InputError(f"--max-age {show(text)} is not a duration like 7d, 36h or 90m"
                         ) from None
    days = value / {"days": 1, "hours": 24, "minutes": 1440}[unit]
    if not MAX_AGE_DAYS.admits(days):
        raise InputError(f"--max-age {show(text)} must be positive and at most "
                         f"{MAX_AGE_DAYS.high:g} days")
    return timedelta(**{unit: value})


MAX_AGE_DAYS = Limit(0, 3650, low_open=True)


def check_options(max_change: float) -> None:
    """`tuner apply`'s numeric flags (--max-age is checked as it is parsed)."""
    problem = number_problem(max_change, "--max-change", *TUNE_LIMITS["max_change"])
    if problem:
        raise InputError(problem)


def load_run(run_dir: Path) -> dict:
    """A run directory's result.json, checked to hold a recommendation to apply."""
    result = read_result(run_dir)
    if not result.get("policy") or not result.get("scalable_target"):
        error = result.get("error")
        raise InputError(f"{run_dir} holds no recommendation to apply "
                         f"({show(error, 200) if error else 'no policy in result.json'})")
    return checked(ApplyRecord, result, str(Path(run_dir) / "result.json"))


def apply_run(run_dir: Path, options: ApplyOptions,
              say: Callable[[str], None] = lambda line: None) -> ApplyOutcome:
    """Apply a past run's recommendation without re-testing (measure before, apply at release)."""
    result = load_run(run_dir)
    region = result["region"]
    aws.describe_variant(aws.client("sagemaker", region), result["endpoint"],
                         result["variant"])
    recommended_at = datetime.fromisoformat(result["finished_at"])
    outcome = safe_apply(region=region, target=result["scalable_target"],
                         policy=result["policy"], recommended_at=recommended_at,
                         options=options, audit_path=Path(run_dir).parent / "audit.jsonl",
                         say=say)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {"status": outcome.status, "error": outcome.error,
              "plan": outcome.plan.to_dict() if outcome.plan else None,
              "plan_text": outcome.plan.lines() if outcome.plan else [],
              "after": outcome.after.to_dict() if outcome.after else None}
    (Path(run_dir) / f"apply-{stamp}.json").write_text(json.dumps(record, indent=2,
                                                                  default=str))
    return outcome
