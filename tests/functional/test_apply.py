"""Safe apply against moto (in-process): plan, idempotence, guardrails, rollback, audit."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

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
NOW = datetime.now(UTC)
WRITES = {"RegisterScalableTarget", "PutScalingPolicy", "DeleteScalingPolicy",
          "DeregisterScalableTarget"}


class Calls:
    """Records every Application Auto Scaling call; can make one operation fail once."""

    def __init__(self):
        self.names: list[str] = []
        self.fail: dict[str, Exception] = {}

    def hook(self, model, **_):
        self.names.append(model.name)
        if model.name in self.fail:
            raise self.fail.pop(model.name)

    @property
    def writes(self):
        return [n for n in self.names if n in WRITES]


@pytest.fixture
def calls(moto_aws, hook_autoscaling):
    create_endpoint("ep")
    recorder = Calls()
    hook_autoscaling(before=recorder.hook)
    return recorder


def requests(target=6000.0, low=1, high=4, scale_in=300):
    return (scalable_target_request(RID, low, high),
            scaling_policy_request(RID, target, scale_in, 300))


def run(tmp_path, target_value=6000.0, low=1, high=4, scale_in=300, at=NOW, **options):
    target, policy = requests(target_value, low, high, scale_in)
    return safe_apply(region="us-east-1", target=target, policy=policy, recommended_at=at,
                      options=ApplyOptions(**options), audit_path=tmp_path / "audit.jsonl")


def state():
    stored = aws.read_scaling_state(aws.client("application-autoscaling", "us-east-1"), RID)
    return state_fingerprint(stored.target, stored.policies)


def existing_setup():
    """A variant that already scales: built-in policy at 1000 plus a custom-named one."""
    client = aws.client("application-autoscaling", "us-east-1")
    client.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RID,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=2,
        MaxCapacity=6, SuspendedState={"DynamicScalingInSuspended": False,
                                       "DynamicScalingOutSuspended": False,
                                       "ScheduledScalingSuspended": True})
    client.put_scaling_policy(**scaling_policy_request(RID, 5000.0, 600, 60))
    custom = scaling_policy_request(RID, 700.0, 300, 300)
    custom["PolicyName"] = "my-invocations-policy"
    client.put_scaling_policy(**custom)


def audit_lines(tmp_path):
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def test_dry_run_writes_nothing_and_shows_the_plan(tmp_path, calls):
    outcome = run(tmp_path, dry_run=True)
    assert outcome.status == "dry-run"
    assert calls.writes == []
    assert outcome.plan.changes
    assert state() == state_fingerprint(None, [])
    assert audit_lines(tmp_path)[-1]["result"] == "dry-run"


def test_second_identical_apply_makes_no_write_call(tmp_path, calls):
    assert run(tmp_path).status == "applied"
    assert calls.writes == ["RegisterScalableTarget", "PutScalingPolicy"]
    calls.names.clear()
    again = run(tmp_path)
    assert again.status == "no-change"
    assert calls.writes == []
    assert "  no changes" in again.plan.lines()


def test_custom_policy_is_detected_and_replaced_on_request(tmp_path, calls):
    existing_setup()
    kept = run(tmp_path, target_value=5500.0, low=2, high=6)
    assert kept.status == "applied"
    assert [p["PolicyName"] for p in kept.plan.custom_policies] == ["my-invocations-policy"]
    text = "\n".join(kept.plan.lines())
    assert "my-invocations-policy: target tracking on SageMakerVariantInvocationsPerInstance" \
        in text and "combine" in text
    assert set(state()["policies"]) == {POLICY_NAME, "my-invocations-policy"}
    replaced = run(tmp_path, target_value=5500.0, low=2, high=6, replace_custom=True)
    assert replaced.status == "applied"
    assert list(state()["policies"]) == [POLICY_NAME]


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"low": 3, "high": 2}, "below min capacity"),
    ({"low": 0}, "at least 1"),
    ({"target_value": -5.0}, "positive finite"),
    ({"target_value": float("inf")}, "positive finite"),
    ({"scale_in": 4000}, "0-3600"),
    ({"target_value": 9000.0}, "changes +80%"),
    ({"target_value": 5000.0, "low": 2, "high": 6, "at": NOW - timedelta(days=8)},
     "days 0 h old"),
])
def test_guardrails_refuse_with_exit_2_and_change_nothing(tmp_path, calls, kwargs, fragment):
    existing_setup()
    before = state()
    calls.names.clear()
    outcome = run(tmp_path, **kwargs)
    assert (outcome.status, outcome.exit_code) == ("refused", 2)
    assert fragment in outcome.error
    assert calls.writes == []
    assert state() == before
    assert audit_lines(tmp_path)[-1]["result"] == "refused"


def test_force_overrides_the_change_and_age_guards(tmp_path, calls):
    existing_setup()
    outcome = run(tmp_path, target_value=9000.0, at=NOW - timedelta(days=30), force=True)
    assert outcome.status == "applied"


@pytest.mark.parametrize("failing", ["PutScalingPolicy", "DeleteScalingPolicy"])
def test_failed_write_rolls_back_to_the_exact_previous_state(tmp_path, calls, failing):
    existing_setup()
    before = state()
    calls.fail[failing] = ClientError(
        {"Error": {"Code": "InternalFailure", "Message": "injected"}}, failing)
    outcome = run(tmp_path, target_value=5500.0, low=1, high=8, replace_custom=True)
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert "rolled back" in outcome.error
    assert state() == before


def test_rollback_removes_what_a_fresh_variant_did_not_have(tmp_path, calls):
    calls.fail["PutScalingPolicy"] = ClientError(
        {"Error": {"Code": "InternalFailure", "Message": "injected"}}, "PutScalingPolicy")
    outcome = run(tmp_path)
    assert outcome.status == "failed"
    assert state() == state_fingerprint(None, [])


def test_failed_verification_rolls_back(tmp_path, calls, monkeypatch):
    existing_setup()
    before = state()
    monkeypatch.setattr(apply_module, "stored_mismatches", lambda *a: ["TargetValue differs"])
    outcome = run(tmp_path, target_value=5500.0, low=2, high=6)
    assert outcome.status == "failed" and "TargetValue differs" in outcome.error
    assert state() == before


def test_access_denied_names_the_iam_action(tmp_path, calls):
    calls.fail["RegisterScalableTarget"] = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
        "RegisterScalableTarget")
    outcome = run(tmp_path)
    assert "grant the IAM action application-autoscaling:RegisterScalableTarget" in outcome.error


def test_audit_records_caller_before_after_and_never_credentials(tmp_path, calls):
    run(tmp_path)
    (record,) = audit_lines(tmp_path)
    assert record["caller"].startswith("arn:aws:")
    assert record["result"] == "applied"
    assert record["before"]["policies"] == []
    assert record["after"]["policies"][0]["PolicyName"] == POLICY_NAME
    text = (tmp_path / "audit.jsonl").read_text()
    import boto3

    credentials = boto3.session.Session().get_credentials()  # the ones the apply used
    assert credentials.access_key and credentials.access_key not in text
    assert credentials.secret_key and credentials.secret_key not in text


def test_dry_run_previews_a_large_change_instead_of_refusing(tmp_path, calls):
    existing_setup()
    calls.names.clear()
    said: list[str] = []
    target, policy = requests(9000.0)
    outcome = safe_apply(region="us-east-1", target=target, policy=policy, recommended_at=NOW,
                         options=ApplyOptions(dry_run=True), audit_path=tmp_path / "a.jsonl",
                         say=said.append)
    assert outcome.status == "dry-run" and outcome.exit_code == 0
    assert any("an apply would be refused" in line and "--force" in line for line in said)
    assert calls.writes == []
