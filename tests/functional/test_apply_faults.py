"""Safe apply under AWS faults and races (moto in-process, faults injected into the client).

Faults are raised from botocore's `before-call` hook (the request never reaches AWS: a
rejected call) or its `after-call` hook (the request took effect, the answer was lost: a
5xx after the write). Both sit outside botocore's retry loop, so they stand for failures
that outlasted the retries; `test_throttling_*` goes through the real retry loop instead.
Whatever fails, the state read back afterwards is exactly the previous or the new one and
the audit line says which, or the failure says loudly that it is neither.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import boto3
import botocore.retries.standard
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse
from typer.testing import CliRunner

from tuner.demo.servers import create_endpoint
from tuner.scaling import apply as apply_module
from tuner.scaling import aws
from tuner.scaling.apply import ApplyOptions, safe_apply
from tuner.scaling.policy import (
    POLICY_NAME,
    scalable_target_request,
    scaling_policy_request,
    state_fingerprint,
)

RID = "endpoint/ep/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
WRITES = {"RegisterScalableTarget", "PutScalingPolicy", "DeleteScalingPolicy",
          "DeregisterScalableTarget"}
FOREVER = 10**6


@dataclass
class Rule:
    """Fail calls number `first` .. `first + times - 1` of `operation` (counted from 1)."""

    operation: str
    first: int
    times: int
    lost: bool  # True: the call takes effect and then fails (answer lost)
    code: str

    def hits(self, operation: str, number: int) -> bool:
        return operation == self.operation and self.first <= number < self.first + self.times

    def error(self) -> ClientError:
        status = 400 if self.code == "ThrottlingException" else 503
        return ClientError({"Error": {"Code": self.code, "Message": "injected"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, self.operation)


class Faults:
    """An injected fault plan for every Application Auto Scaling client the apply makes."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.count: Counter[str] = Counter()
        self.rules: list[Rule] = []
        self.raised: list[tuple[str, int]] = []

    def fail(self, operation: str, first: int = 1, times: int = 1, lost: bool = False,
             code: str = "ThrottlingException") -> None:
        self.rules.append(Rule(operation, first, times, lost, code))

    def _check(self, name: str, lost: bool) -> None:
        for rule in self.rules:
            if rule.lost == lost and rule.hits(name, self.count[name]):
                self.raised.append((name, self.count[name]))
                raise rule.error()

    def before(self, model, **_) -> None:
        self.names.append(model.name)
        self.count[model.name] += 1
        self._check(model.name, lost=False)

    def after(self, model, **_) -> None:
        self._check(model.name, lost=True)

    @property
    def writes(self) -> list[str]:
        return [n for n in self.names if n in WRITES]


@pytest.fixture
def faults(moto_aws, hook_autoscaling, monkeypatch):
    create_endpoint("ep")
    injected = Faults()
    hook_autoscaling(before=injected.before, after=injected.after)
    monkeypatch.setattr(apply_module, "ROLLBACK_PAUSE_S", 0.0, raising=False)
    yield injected


def raw_client():
    """A client outside the fault plan: the test's own view of AWS, or another user."""
    return boto3.client("application-autoscaling", region_name="us-east-1")


def read_state() -> aws.ScalingState:
    return aws.read_scaling_state(raw_client(), RID)


def fingerprint(state: aws.ScalingState) -> dict:
    return state_fingerprint(state.target, state.policies)


SUSPENDED = {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": True,
             "ScheduledScalingSuspended": True}


def existing_setup(suspended: dict | None = None, builtin_target: float = 5000.0) -> None:
    """A variant that already scales: built-in policy plus a custom-named one."""
    client = raw_client()
    client.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RID, ScalableDimension=DIMENSION,
        MinCapacity=2, MaxCapacity=6,
        SuspendedState=suspended or {"DynamicScalingInSuspended": False,
                                     "DynamicScalingOutSuspended": False,
                                     "ScheduledScalingSuspended": True})
    client.put_scaling_policy(**scaling_policy_request(RID, builtin_target, 600, 60))
    custom = scaling_policy_request(RID, 700.0, 300, 300)
    custom["PolicyName"] = "my-invocations-policy"
    client.put_scaling_policy(**custom)


def apply(tmp_path, target_value=5500.0, low=1, high=8, say=lambda line: None, **options):
    target = scalable_target_request(RID, low, high)
    policy = scaling_policy_request(RID, target_value, 600, 60)
    from datetime import UTC, datetime
    return safe_apply(region="us-east-1", target=target, policy=policy,
                      recommended_at=datetime.now(UTC), options=ApplyOptions(**options),
                      audit_path=tmp_path / "audit.jsonl", say=say,
                      rerun="tuner apply reports/ep/RUN")


def last_audit(tmp_path) -> dict:
    return json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])


# Every Application Auto Scaling call of an apply that changes the target and the built-in
# policy and deletes a custom policy, in order: plan read, re-read before writing, register,
# put, verify read, delete, verify read. (operation, its number, writes happened before it)
APPLY_CALLS = [
    ("DescribeScalableTargets", 1, False), ("DescribeScalingPolicies", 1, False),
    ("DescribeScalableTargets", 2, False), ("DescribeScalingPolicies", 2, False),
    ("RegisterScalableTarget", 1, False), ("PutScalingPolicy", 1, True),
    ("DescribeScalableTargets", 3, True), ("DescribeScalingPolicies", 3, True),
    ("DeleteScalingPolicy", 1, True),
    ("DescribeScalableTargets", 4, True), ("DescribeScalingPolicies", 4, True),
]
CASES = [pytest.param(op, n, wrote, lost, code, id=f"{op}#{n}-{kind}")
         for op, n, wrote in APPLY_CALLS
         for lost, code, kind in ((False, "ThrottlingException", "throttled"),
                                  (True, "ServiceUnavailable", "5xx-after-write"))
         if op in WRITES or not lost]


def test_the_fault_positions_are_every_call_of_the_apply(tmp_path, faults):
    existing_setup()
    assert apply(tmp_path, replace_custom=True).end_state == "new"
    assert [(name, faults.names[:i + 1].count(name)) for i, name in enumerate(faults.names)] \
        == [(op, n) for op, n, _ in APPLY_CALLS]


@pytest.mark.parametrize(("operation", "number", "wrote", "lost", "code"), CASES)
def test_a_fault_at_any_call_leaves_exactly_the_previous_state_and_audits_it(
        tmp_path, faults, operation, number, wrote, lost, code):
    existing_setup()
    before = read_state()
    faults.fail(operation, number, lost=lost, code=code)
    outcome = apply(tmp_path, replace_custom=True)
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert f"{operation}: {code}" in outcome.error
    now = read_state()
    assert fingerprint(now) == fingerprint(before)
    record = last_audit(tmp_path)
    if operation in WRITES or wrote:
        assert record["end_state"] == outcome.end_state == "previous"
        assert "rolled back to the previous state (read back)" in outcome.error
        # What was read back after the rollback (re-put policies have new ARNs), not `before`.
        assert record["after"] == json.loads(json.dumps(now.to_dict()))
    else:
        assert record["end_state"] == "unchanged"
        assert faults.writes == []
    assert record["repair"] is None and record["result"] == "failed"


# The rollback after a lost DeleteScalingPolicy answer (the custom policy is gone): read,
# register the old min/max, put both old policies back, read to verify.
ROLLBACK_CALLS = [("DescribeScalableTargets", 4), ("DescribeScalingPolicies", 4),
                  ("RegisterScalableTarget", 2), ("PutScalingPolicy", 2),
                  ("PutScalingPolicy", 3), ("DescribeScalableTargets", 5),
                  ("DescribeScalingPolicies", 5)]


@pytest.mark.parametrize(("operation", "number"), ROLLBACK_CALLS)
@pytest.mark.parametrize("lost", [False, True], ids=["throttled", "5xx-after-write"])
def test_a_fault_during_the_rollback_is_retried_to_exactly_the_previous_state(
        tmp_path, faults, operation, number, lost):
    existing_setup()
    before = read_state()
    faults.fail("DeleteScalingPolicy", 1, lost=True, code="InternalFailure")
    faults.fail(operation, number, lost=lost, code="ServiceUnavailable")
    outcome = apply(tmp_path, replace_custom=True)
    assert fingerprint(read_state()) == fingerprint(before)
    assert outcome.exit_code == 1 and outcome.end_state == "previous"
    assert last_audit(tmp_path)["end_state"] == "previous"
    assert (operation, number) in faults.raised  # the rollback really met the fault


def test_rollback_of_a_fresh_variant_deregisters_despite_a_fault(tmp_path, faults):
    faults.fail("PutScalingPolicy", 1)
    faults.fail("DeregisterScalableTarget", 1, code="InternalFailure")
    outcome = apply(tmp_path)
    assert read_state().target is None
    assert outcome.end_state == "previous" and faults.count["DeregisterScalableTarget"] == 2


def test_a_rollback_that_cannot_finish_says_the_state_is_partial_and_how_to_repair(
        tmp_path, faults):
    existing_setup()
    faults.fail("PutScalingPolicy", 1, lost=True, code="ServiceUnavailable")
    faults.fail("PutScalingPolicy", 2, times=FOREVER, code="ThrottlingException")
    said: list[str] = []
    outcome = apply(tmp_path, say=said.append)
    assert (outcome.status, outcome.exit_code, outcome.end_state) == ("failed", 1, "partial")
    assert "\n" not in outcome.error
    assert "ROLLBACK FAILED" in outcome.error and "rolled back to" not in outcome.error
    assert "was NOT restored" in outcome.error and "a mix (read back)" in outcome.error
    assert "to repair: re-run `tuner apply reports/ep/RUN`" in outcome.error
    assert any(line.startswith("ROLLBACK FAILED") for line in said)
    record = last_audit(tmp_path)
    assert record["end_state"] == "partial" and "tuner apply reports/ep/RUN" in record["repair"]
    now = read_state()
    assert record["after"] == json.loads(json.dumps(now.to_dict()))
    assert now.target["MinCapacity"] == 2  # the target was restored, the policy was not
    assert now.policies[0]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 5500.0
    assert faults.count["PutScalingPolicy"] == 1 + apply_module.ROLLBACK_ATTEMPTS


def test_a_rollback_whose_checks_fail_is_judged_by_a_last_read(tmp_path, faults):
    """Every rollback attempt fails on a read, but the restore itself went through: the
    state read back afterwards is the previous one, and that is what is reported."""
    existing_setup()
    before = read_state()
    faults.fail("DeleteScalingPolicy", 1, lost=True, code="InternalFailure")
    faults.fail("DescribeScalableTargets", 5, times=apply_module.ROLLBACK_ATTEMPTS)
    outcome = apply(tmp_path, replace_custom=True)
    assert fingerprint(read_state()) == fingerprint(before)
    assert outcome.end_state == "previous" and "rolled back" in outcome.error
    assert last_audit(tmp_path)["after"] == json.loads(json.dumps(read_state().to_dict()))


def test_a_rollback_that_cannot_write_after_a_complete_write_reports_the_new_state(
        tmp_path, faults):
    existing_setup()
    faults.fail("DeleteScalingPolicy", 1, lost=True, code="InternalFailure")
    faults.fail("RegisterScalableTarget", 2, times=FOREVER)
    outcome = apply(tmp_path, replace_custom=True)
    assert (outcome.exit_code, outcome.end_state) == (1, "new")
    assert "holds exactly the new configuration: nothing to repair" in outcome.error
    record = last_audit(tmp_path)
    assert (record["end_state"], record["repair"]) == ("new", None)
    assert [p["PolicyName"] for p in read_state().policies] == [POLICY_NAME]


def test_a_rollback_that_cannot_read_aws_says_the_state_is_unknown(tmp_path, faults):
    existing_setup()
    faults.fail("DescribeScalableTargets", 3, times=FOREVER, code="InternalFailure")
    outcome = apply(tmp_path)
    assert (outcome.exit_code, outcome.end_state, outcome.after) == (1, "unknown", None)
    assert "its state is unknown (it could not be read back)" in outcome.error
    assert "to repair" in outcome.error
    record = last_audit(tmp_path)
    assert (record["end_state"], record["after"]) == ("unknown", None)
    assert record["repair"]


def test_cli_apply_fails_loudly_when_the_rollback_cannot_finish(tmp_path, faults):
    from datetime import UTC, datetime

    from tuner.cli import app

    existing_setup()
    run_dir = tmp_path / "ep" / "20260101T000000Z"
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps({
        "endpoint": "ep", "variant": "AllTraffic", "region": "us-east-1",
        "sla": {"percentile": 90.0, "latency_ms": 100.0, "max_error_rate": 0.01},
        "finished_at": datetime.now(UTC).isoformat(),
        "scalable_target": scalable_target_request(RID, 1, 8),
        "policy": scaling_policy_request(RID, 5500.0, 600, 60)}))
    faults.fail("PutScalingPolicy", 1, lost=True, code="ServiceUnavailable")
    faults.fail("PutScalingPolicy", 2, times=FOREVER)
    done = CliRunner().invoke(app, ["apply", str(run_dir), "--replace-custom"])
    assert done.exit_code == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "ROLLBACK FAILED" in line
    assert f"re-run `tuner apply {run_dir} --replace-custom`" in line
    assert "result: applied" not in done.stdout
    record = json.loads((run_dir.parent / "audit.jsonl").read_text().splitlines()[-1])
    assert record["end_state"] == "partial"


def test_throttling_within_botocore_retries_is_absorbed(tmp_path, faults, monkeypatch):
    """Through the real retry loop: throttled answers for fewer attempts than RETRIES."""
    existing_setup()
    _throttle_http(monkeypatch, "PutScalingPolicy", times=total_attempts() - 1)
    outcome = apply(tmp_path)
    assert (outcome.status, outcome.end_state) == ("applied", "new")


def test_throttling_that_outlasts_the_retries_rolls_back(tmp_path, faults, monkeypatch):
    existing_setup()
    sent = _throttle_http(monkeypatch, "PutScalingPolicy", times=FOREVER)
    before = read_state()
    outcome = apply(tmp_path)
    assert "PutScalingPolicy: ThrottlingException" in outcome.error
    assert outcome.end_state == "previous" and fingerprint(read_state()) == fingerprint(before)
    assert sent["PutScalingPolicy"] == total_attempts()


def total_attempts() -> int:
    """How many times a call is sent, first attempt included, with aws.RETRIES."""
    made = boto3.client("application-autoscaling", region_name="us-east-1", config=aws.RETRIES)
    return made.meta.config.retries["total_max_attempts"]


def _throttle_http(monkeypatch, operation: str, times: int) -> Counter:
    """Let "AWS" (moto's request handler) answer the first `times` sends of `operation` with
    a throttling error without acting on them; botocore's standard retry mode retries them
    (without sleeping here)."""
    sent: Counter[str] = Counter()
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount",
                        lambda self, context: 0)
    moto_answer = BotocoreStubber.__call__

    def answer(self, event_name: str, request, **kwargs):
        name = event_name.rsplit(".", 1)[-1]
        if event_name.startswith("before-send.application-auto-scaling.") and name == operation:
            sent[name] += 1
            if sent[name] <= times:
                body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
                return AWSResponse(request.url, 400, {"x-amzn-RequestId": "r"},
                                   MockRawResponse(body))
        return moto_answer(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", answer)
    return sent


# --- dynamic scaling suspended: a policy that never acts is not "no change" ---------------

def test_suspended_dynamic_scaling_is_a_change_to_resume(tmp_path, faults):
    existing_setup(suspended=SUSPENDED, builtin_target=5500.0)
    said: list[str] = []
    dry = apply(tmp_path, low=2, high=6, dry_run=True, say=said.append)
    assert not dry.plan.no_changes and faults.writes == []
    assert any(line.startswith("  ~ resume dynamic scaling: scale-in and scale-out "
                                "suspended") and "scheduled scaling stays suspended" in line
               for line in said)
    assert "  no changes" not in said
    outcome = apply(tmp_path, low=2, high=6)
    assert (outcome.status, outcome.end_state) == ("applied", "new")
    assert read_state().target["SuspendedState"] == {
        "DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": True}
    assert last_audit(tmp_path)["plan"]["resume_scaling"]["DynamicScalingInSuspended"] is False
    assert apply(tmp_path, low=2, high=6).status == "no-change"


def test_one_suspended_direction_is_resumed_too(tmp_path, faults):
    existing_setup(suspended={"DynamicScalingInSuspended": True,
                              "DynamicScalingOutSuspended": False,
                              "ScheduledScalingSuspended": False}, builtin_target=5500.0)
    said: list[str] = []
    assert apply(tmp_path, low=2, high=6, say=said.append).status == "applied"
    assert any("resume dynamic scaling: scale-in suspended" in line for line in said)
    assert not any(read_state().target["SuspendedState"].values())


def test_keep_suspended_leaves_it_and_warns(tmp_path, faults):
    existing_setup(suspended=SUSPENDED, builtin_target=5500.0)
    said: list[str] = []
    outcome = apply(tmp_path, low=2, high=6, keep_suspended=True, say=said.append)
    assert outcome.status == "no-change" and faults.writes == []
    assert any("is suspended: no policy acts until it is resumed" in line for line in said)
    assert read_state().target["SuspendedState"] == SUSPENDED


def test_a_failed_resume_rolls_back_to_suspended(tmp_path, faults):
    existing_setup(suspended=SUSPENDED, builtin_target=5500.0)
    faults.fail("PutScalingPolicy", 1, code="InternalFailure")
    outcome = apply(tmp_path, low=2, high=6)
    assert outcome.end_state == "previous"
    assert read_state().target["SuspendedState"] == SUSPENDED


# --- two applies racing on one variant ----------------------------------------------------

def _meanwhile(change):
    """A `say` that makes a concurrent change once the plan has been printed."""
    def say(line: str) -> None:
        if line.startswith("Plan for"):
            change(raw_client())
    return say


@pytest.mark.parametrize(("change", "named"), [
    (lambda c: c.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RID,
                                          ScalableDimension=DIMENSION, MaxCapacity=9),
     "MaxCapacity 6 -> 9"),
    (lambda c: c.put_scaling_policy(**scaling_policy_request(RID, 4800.0, 600, 60)),
     f"policy {POLICY_NAME} changed"),
    (lambda c: c.delete_scaling_policy(PolicyName="my-invocations-policy",
                                       ServiceNamespace="sagemaker", ResourceId=RID,
                                       ScalableDimension=DIMENSION),
     "policy my-invocations-policy removed"),
])
def test_a_change_between_plan_and_write_refuses_and_writes_nothing(tmp_path, faults, change,
                                                                    named):
    existing_setup()
    outcome = apply(tmp_path, say=_meanwhile(change))
    assert (outcome.status, outcome.exit_code, outcome.end_state) == ("failed", 1, "unchanged")
    assert "changed since the plan was made" in outcome.error and named in outcome.error
    assert "re-run" in outcome.error and "\n" not in outcome.error
    assert faults.writes == []
    now = read_state()
    record = last_audit(tmp_path)
    assert record["end_state"] == "unchanged"
    assert record["after"] == json.loads(json.dumps(now.to_dict()))  # the other's change kept


def test_a_concurrent_first_registration_is_not_overwritten(tmp_path, faults):
    outcome = apply(tmp_path, say=_meanwhile(lambda c: c.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RID, ScalableDimension=DIMENSION,
        MinCapacity=3, MaxCapacity=5)))
    assert "a scalable target was registered" in outcome.error
    assert (read_state().target["MinCapacity"], faults.writes) == (3, [])


def test_an_identical_concurrent_apply_is_no_conflict(tmp_path, faults):
    """Re-putting the same content (new ARN, same policy) is not a change."""
    existing_setup()
    outcome = apply(tmp_path, say=_meanwhile(
        lambda c: c.put_scaling_policy(**scaling_policy_request(RID, 5000.0, 600, 60))))
    assert outcome.status == "applied"
