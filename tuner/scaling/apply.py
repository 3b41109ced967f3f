"""Safe apply: plan, guardrails, write, verify, roll back, audit.

As trustworthy as `terraform apply`: the plan is computed and shown before any write; a plan
with no changes writes nothing; guardrails refuse (exit 2) before anything is written; the
state is read again just before writing and a concurrent change since the plan refuses the
apply (exit 1, nothing written); a failed write or verification restores the previous
scalable target and policies exactly (exit 1), retrying the restore while AWS fails; and
every outcome, refusals included, is appended to the endpoint's audit log with the end
state as read back from AWS: new, previous, partial or unknown (then with what to run to
repair). `tuner tune` and `tuner apply RUN_DIR` both come through `safe_apply`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tuner.config import TUNE_LIMITS, TuneConfig
from tuner.errors import InputError, RunError, TunerError
from tuner.inputs import Limit, number_problem, show
from tuner.scaling import aws
from tuner.scaling.policy import (
    POLICY_NAME,
    ApplyPlan,
    check_age,
    check_change,
    check_requests,
    make_plan,
    policy_put_args,
    scalable_target_request,
    scaling_policy_request,
    state_differences,
    state_fingerprint,
    stored_mismatches,
    suspended_flags,
)
from tuner.status import ApplyStatus, EndState

# A rollback is retried this often, this far apart, before the state is declared unknown:
# it reads the state afresh each time, so a retry after a partial restore is safe.
ROLLBACK_ATTEMPTS = 3
ROLLBACK_PAUSE_S = 2.0


@dataclass(frozen=True)
class ApplyOptions:
    dry_run: bool = False
    replace_custom: bool = False
    force: bool = False
    max_change: float = 0.5
    max_age: timedelta = timedelta(days=7)
    # Leave suspended dynamic scaling suspended (by default an apply resumes it).
    keep_suspended: bool = False


@dataclass(frozen=True)
class ApplyOutcome:
    """How an apply ended (`status.ApplyStatus`), and what AWS holds afterwards, as read
    back (`status.EndState`: unchanged, new, previous, partial or unknown)."""

    status: ApplyStatus
    plan: ApplyPlan | None
    before: aws.ScalingState | None
    after: aws.ScalingState | None = None
    error: str | None = None
    exit_code: int = 0
    end_state: EndState = EndState.UNCHANGED

    @property
    def applied(self) -> bool:
        return self.status == ApplyStatus.APPLIED


def write_plan(autoscaling: Any, plan: ApplyPlan) -> aws.ScalingState:
    """Register, put the built-in policy, verify; then delete custom policies, verify again."""
    resource = plan.target["ResourceId"]
    resume = {"SuspendedState": plan.resume_scaling} if plan.resume_scaling else {}
    aws.call("application-autoscaling:RegisterScalableTarget",
             autoscaling.register_scalable_target, **plan.target, **resume)
    aws.call("application-autoscaling:PutScalingPolicy", autoscaling.put_scaling_policy,
             **plan.policy)
    after = aws.read_scaling_state(autoscaling, resource)
    problems = stored_mismatches(after.target, after.policies, plan.target, plan.policy,
                                 plan.resume_scaling)
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


class ConcurrentChange(RunError):
    """The variant's scaling changed between the plan and the write: nothing written."""

    def __init__(self, now: aws.ScalingState, what: str) -> None:
        super().__init__(f"refused: the variant's scaling changed since the plan was made "
                         f"({what}), probably another apply or a console edit: nothing "
                         "written; re-run to plan against the current state")
        self.now = now


def check_unchanged(autoscaling: Any, before: aws.ScalingState, resource: str) -> None:
    """Refuse to write over a change made since the plan (another apply, a console edit).

    AWS has no conditional writes, so this narrows the window to the time between this read
    and the first write; it cannot close it.
    """
    now = aws.read_scaling_state(autoscaling, resource)
    changed = state_differences(state_fingerprint(before.target, before.policies),
                                state_fingerprint(now.target, now.policies))
    if changed:
        raise ConcurrentChange(now, "; ".join(changed))


def is_planned_state(state: aws.ScalingState, before: aws.ScalingState,
                     plan: ApplyPlan) -> bool:
    """Whether `state` is exactly what `plan` would leave: the new target and built-in policy,
    the suspended state wanted, every other policy deleted or untouched as planned."""
    if stored_mismatches(state.target, state.policies, plan.target, plan.policy):
        return False
    wanted_flags = plan.resume_scaling or suspended_flags(before.target)
    if suspended_flags(state.target) != wanted_flags:
        return False
    kept = {p["PolicyName"]: policy_put_args(p) for p in before.policies
            if p["PolicyName"] != POLICY_NAME and p["PolicyName"] not in plan.delete_policies}
    others = {p["PolicyName"]: policy_put_args(p) for p in state.policies
              if p["PolicyName"] != POLICY_NAME}
    return others == kept


def classify(state: aws.ScalingState | None, before: aws.ScalingState,
             plan: ApplyPlan) -> EndState:
    """The end state for the audit: previous, new, partial or unknown."""
    if state is None:
        return EndState.UNKNOWN
    if not state_differences(state_fingerprint(before.target, before.policies),
                             state_fingerprint(state.target, state.policies)):
        return EndState.PREVIOUS
    return EndState.NEW if is_planned_state(state, before, plan) else EndState.PARTIAL


def read_back(autoscaling: Any, resource: str) -> aws.ScalingState | None:
    """The state as AWS reports it now, or None when even that read fails."""
    try:
        return aws.read_scaling_state(autoscaling, resource)
    except Exception:  # reported as "unknown": never guess a state we could not read
        return None


def roll_back(autoscaling: Any, before: aws.ScalingState,
              target: dict) -> tuple[aws.ScalingState | None, str | None]:
    """Restore `before`, retrying while AWS fails: (state read back, None) when it is
    restored, or (best read of the state, the last error) when it could not be."""
    error = "no attempt"
    for attempt in range(ROLLBACK_ATTEMPTS):
        if attempt:
            time.sleep(ROLLBACK_PAUSE_S)
        try:
            return restore(autoscaling, before, target), None
        except Exception as exc:  # any failure: try again from a fresh read
            error = str(exc)
    return read_back(autoscaling, target["ResourceId"]), error


def restore(autoscaling: Any, before: aws.ScalingState, target: dict) -> aws.ScalingState:
    """Put the variant's scaling back exactly as `before` and return it as read back;
    RunError if that fails."""
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
    elif (state_fingerprint(now.target, [])["target"]
          != state_fingerprint(before.target, [])["target"]):  # fewer writes, fewer faults
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
    left = state_differences(state_fingerprint(before.target, before.policies),
                             state_fingerprint(restored.target, restored.policies))
    if left:
        raise RunError(f"rollback incomplete: read back, the variant's scaling still differs "
                       f"from before ({'; '.join(left)})")
    return restored


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


def rerun_command(run_dir: Path | str, options: ApplyOptions) -> str:
    """The `tuner apply` command that repeats this apply from its run directory."""
    flags = [flag for flag, on in (("--replace-custom", options.replace_custom),
                                   ("--force", options.force),
                                   ("--keep-suspended", options.keep_suspended)) if on]
    if options.max_change != ApplyOptions.max_change:
        flags.append(f"--max-change {options.max_change:g}")
    return " ".join(["tuner apply", str(run_dir), *flags])


END_STATE_TEXT = {
    EndState.NEW: "it holds exactly the new configuration (read back)",
    EndState.PREVIOUS: "it holds exactly the previous configuration (read back)",
    EndState.PARTIAL: "it holds neither the previous nor the new configuration but a mix "
                      "(read back)",
    EndState.UNKNOWN: "its state is unknown (it could not be read back)",
}


def failed_rollback(reason: str, rollback_error: str, end_state: EndState, rerun: str,
                    audit_path: Path) -> tuple[str, str | None]:
    """The one-line error after a rollback that could not be completed, and the repair
    (None when the state read back is exactly the new one: nothing to repair)."""
    if end_state == EndState.NEW:
        return (f"{reason}; the rollback failed too ({rollback_error}), but read back the "
                "variant holds exactly the new configuration: nothing to repair"), None
    repair = (f"re-run `{rerun}` once AWS answers again (it plans against whatever is there "
              "and writes the new configuration), or put back the 'before' of this apply's "
              f"line in {audit_path}")
    return (f"{reason}; ROLLBACK FAILED: {rollback_error}; the variant's scaling was NOT "
            f"restored: {END_STATE_TEXT[end_state]}; to repair: {repair}"), repair


def safe_apply(*, region: str, target: dict, policy: dict, recommended_at: datetime,
               options: ApplyOptions, audit_path: Path,
               say: Callable[[str], None] = lambda line: None,
               rerun: str = "the same apply") -> ApplyOutcome:
    """Plan, check, write, verify, roll back on failure; audit every outcome.

    `rerun` is the command that repeats this apply, named in the repair advice when a
    rollback cannot be completed.
    """
    autoscaling = aws.client("application-autoscaling", region)
    before: aws.ScalingState | None = None
    plan: ApplyPlan | None = None

    def finish(status: ApplyStatus, after: aws.ScalingState | None = None,
               error: str | None = None, exit_code: int = 0,
               end_state: EndState = EndState.UNCHANGED,
               repair: str | None = None) -> ApplyOutcome:
        append_audit(audit_path, {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "caller": caller_identity(region),
            "resource_id": target["ResourceId"], "region": region,
            "action": "dry-run" if options.dry_run else "apply", "result": status,
            "end_state": end_state, "repair": repair,
            "error": error, "plan": plan.to_dict() if plan else None,
            "before": before.to_dict() if before else None,
            "after": after.to_dict() if after else None,
        })
        return ApplyOutcome(status, plan, before, after, error, exit_code, end_state)

    try:
        check_requests(target, policy)
        before = aws.read_scaling_state(autoscaling, target["ResourceId"])
        plan = make_plan(before.target, before.policies, target, policy, options.replace_custom,
                         resume_scaling=not options.keep_suspended)
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
        return finish(ApplyStatus.REFUSED, error=str(exc), exit_code=2)
    except TunerError as exc:
        return finish(ApplyStatus.FAILED, error=str(exc), exit_code=exc.exit_code)
    if options.dry_run:
        say("dry run: nothing written")
        return finish(ApplyStatus.DRY_RUN)
    if plan.no_changes:
        say("no changes: nothing written")
        return finish(ApplyStatus.NO_CHANGE, after=before)
    try:
        check_unchanged(autoscaling, before, target["ResourceId"])
    except ConcurrentChange as exc:
        return finish(ApplyStatus.FAILED, after=exc.now, error=str(exc), exit_code=1)
    except TunerError as exc:
        return finish(ApplyStatus.FAILED, error=f"{exc}: nothing written", exit_code=1)
    try:
        after = write_plan(autoscaling, plan)
    except Exception as exc:  # any failure mid-write: restore what was there
        reason = str(exc) or type(exc).__name__
        restored, rollback_error = roll_back(autoscaling, before, target)
        end_state = (EndState.PREVIOUS if rollback_error is None
                     else classify(restored, before, plan))
        if end_state == EndState.PREVIOUS:
            say("write failed: the previous scaling configuration was restored and read back")
            return finish(ApplyStatus.FAILED, after=restored, exit_code=1,
                          end_state=EndState.PREVIOUS,
                          error=f"{reason}; rolled back to the previous state (read back)")
        error, repair = failed_rollback(reason, rollback_error, end_state, rerun, audit_path)
        say(f"ROLLBACK FAILED: {END_STATE_TEXT[end_state]}" if repair else
            f"write failed, rollback failed: {END_STATE_TEXT[end_state]}")
        return finish(ApplyStatus.FAILED, after=restored, error=error, exit_code=1,
                      end_state=end_state, repair=repair)
    say(f"applied and verified {policy['PolicyName']}")
    return finish(ApplyStatus.APPLIED, after=after, end_state=EndState.NEW)


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


def recommended_requests(config: TuneConfig, min_capacity: int, max_capacity: int,
                         target_invocations_per_instance: float) -> tuple[dict, dict]:
    """The RegisterScalableTarget and PutScalingPolicy requests a run recommends: the
    variant's capacity bounds and the built-in policy at the derived target."""
    target = scalable_target_request(config.resource_id, min_capacity, max_capacity)
    policy = scaling_policy_request(config.resource_id, target_invocations_per_instance,
                                    config.scale_in_cooldown, config.scale_out_cooldown)
    return target, policy


def apply_options(config: TuneConfig) -> ApplyOptions:
    """What `tuner tune`'s flags ask of its apply."""
    return ApplyOptions(dry_run=config.dry_run, replace_custom=config.replace_custom,
                        force=config.force, max_change=config.max_change,
                        keep_suspended=config.keep_suspended)


def unconsulted_dry_run(target: dict, policy: dict) -> ApplyOutcome:
    """A dry run with no AWS to compare with (`--url --dry-run` and no endpoint): the plan
    from nothing to the recommendation."""
    return ApplyOutcome(ApplyStatus.DRY_RUN, make_plan(None, [], target, policy, False), None)
