"""Crash-safe suspension: the marker on the endpoint's tags, stale detection, recovery, and
signals that cannot cut a suspension or a restore in half. moto in-process: seconds."""

import os
import re
import signal
from datetime import UTC, datetime, timedelta

import botocore.session
import pytest

from tests.functional.test_aws import RID, _register
from tuner import interrupts
from tuner.demo.servers import create_endpoint
from tuner.errors import InputError, RunError
from tuner.scaling import aws
from tuner.scaling.suspension import (
    EndpointTags,
    SuspensionMarker,
    SuspensionRecord,
    check_markers,
    tag_key,
)

PREVIOUS = {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
            "ScheduledScalingSuspended": True}
SUSPENDED = {**PREVIOUS, "DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": True}
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


@pytest.fixture
def moto(moto_aws):
    create_endpoint("ep")
    yield aws.client("application-autoscaling", "us-east-1"), EndpointTags.of(
        aws.client("sagemaker", "us-east-1"), "ep")


def _state(autoscaling):
    return aws.read_scaling_state(autoscaling, RID).target["SuspendedState"]


def _marker(pid=None, host=None, expires=NOW + timedelta(hours=1)):
    marker = SuspensionMarker.for_this_process("20261130T010000Z", PREVIOUS, expires)
    return SuspensionMarker(marker.run_id, host or marker.host, pid or marker.pid, NOW,
                            expires, marker.previous)


def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_marker_round_trips_and_fits_what_aws_accepts_in_a_tag():
    marker = _marker()
    value = marker.tag_value()
    assert SuspensionMarker.from_tag_value(value) == marker
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("TagValue")
    assert len(value) <= shape.metadata["max"]
    # The model's pattern with \p{L}, \p{Z}, \p{N} narrowed to ASCII (Python's re has no \p).
    ascii_pattern = shape.metadata["pattern"].replace(r"\p{L}", "A-Za-z").replace(
        r"\p{Z}", " ").replace(r"\p{N}", "0-9")
    assert re.fullmatch(ascii_pattern, value), value
    assert len(tag_key("a" * 63)) <= 128


@pytest.mark.parametrize("value", ["", "run=x", "run=x host=h pid=1 at=2026-11-30T01:00:00Z "
                                   "until=2026-11-30T02:00:00Z in=2 out=0 scheduled=0"])
def test_a_value_that_is_not_a_marker_is_refused(value):
    with pytest.raises(ValueError):
        SuspensionMarker.from_tag_value(value)


def test_stale_when_expired_or_its_process_is_gone_from_this_host():
    live = _marker()
    assert live.stale(NOW) is None
    assert "expired" in live.stale(NOW + timedelta(hours=2))
    assert "is gone" in _marker(pid=_dead_pid()).stale(NOW)
    # Another machine's run: its pid means nothing here, only expiry tells.
    assert _marker(pid=_dead_pid(), host="other-host").stale(NOW) is None


def test_suspension_is_recorded_before_and_cleared_only_after_a_verified_restore(moto):
    autoscaling, tags = moto
    target = _register(autoscaling, PREVIOUS)
    record = SuspensionRecord(tags, "AllTraffic",
                              lambda previous: _marker(expires=NOW + timedelta(days=1)))
    with aws.dynamic_scaling_suspended(autoscaling, target, record):
        assert _state(autoscaling) == SUSPENDED
        written = SuspensionMarker.from_tag_value(tags.markers()["AllTraffic"])
        assert written.previous == PREVIOUS
    assert _state(autoscaling) == PREVIOUS
    assert tags.markers() == {}


def test_a_failed_restore_keeps_the_marker_and_says_how_to_recover(moto, monkeypatch):
    autoscaling, tags = moto
    target = _register(autoscaling, PREVIOUS)
    record = SuspensionRecord(tags, "AllTraffic", lambda previous: _marker())
    with pytest.raises(RunError, match="tuner recover"), \
            aws.dynamic_scaling_suspended(autoscaling, target, record):
        # AWS stops answering the restore: the read-back cannot confirm it
        monkeypatch.setattr(aws, "register_and_verify", _failing_restore)
    assert "AllTraffic" in tags.markers()
    assert _state(autoscaling) == SUSPENDED


def _failing_restore(autoscaling, key, state):
    raise RunError("application-autoscaling:RegisterScalableTarget: ThrottlingException")


def test_no_suspension_without_a_record_of_it(moto):
    autoscaling, tags = moto
    target = _register(autoscaling, PREVIOUS)

    class Unwritable:
        def write(self, previous):
            raise RunError("cannot record the suspension: AccessDenied")

        def clear(self):
            raise AssertionError("nothing to clear")

    with pytest.raises(RunError, match="cannot record"), \
            aws.dynamic_scaling_suspended(autoscaling, target, Unwritable()):
        pass
    assert _state(autoscaling) == PREVIOUS


def test_a_stale_marker_is_restored_exactly_by_the_next_command(moto):
    autoscaling, tags = moto
    _register(autoscaling, SUSPENDED)  # what a SIGKILLed run leaves
    tags.write("AllTraffic", _marker(pid=_dead_pid()))
    said = []
    restored = check_markers("us-east-1", "ep", "AllTraffic", said.append, now=NOW)
    assert len(restored) == 1 and "is gone" in restored[0]
    assert _state(autoscaling) == PREVIOUS
    assert tags.markers() == {}


def test_a_live_marker_stops_the_command_unless_forced(moto):
    autoscaling, tags = moto
    _register(autoscaling, SUSPENDED)
    tags.write("AllTraffic", _marker(host="another-machine"))
    with pytest.raises(InputError, match="may still be measuring.*tuner recover"):
        check_markers("us-east-1", "ep", "AllTraffic", print, now=NOW)
    assert _state(autoscaling) == SUSPENDED
    check_markers("us-east-1", "ep", None, print, force=True, now=NOW)
    assert _state(autoscaling) == PREVIOUS and tags.markers() == {}


def test_a_dry_run_only_says_what_it_would_restore(moto):
    autoscaling, tags = moto
    _register(autoscaling, SUSPENDED)
    tags.write("AllTraffic", _marker(pid=_dead_pid()))
    said = []
    assert check_markers("us-east-1", "ep", "AllTraffic", said.append, write=False,
                         now=NOW) == []
    assert "tuner recover" in said[0]
    assert _state(autoscaling) == SUSPENDED


def test_an_unreadable_marker_is_one_line_with_the_fix(moto):
    _, tags = moto
    tags.sagemaker.add_tags(ResourceArn=tags.arn, Tags=[{"Key": tag_key("AllTraffic"),
                                                         "Value": "garbage"}])
    with pytest.raises(InputError, match="unreadable.*delete the tag"):
        check_markers("us-east-1", "ep", "AllTraffic", print, now=NOW)


def test_a_signal_inside_a_deferred_section_is_raised_when_it_ends():
    done = []
    with pytest.raises(interrupts.Interrupted) as stop, interrupts.handled():
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("finished the write")
        done.append("not reached")
    assert done == ["finished the write"]
    assert stop.value.exit_code == 143


def test_a_signal_during_the_suspension_still_restores_it(moto):
    autoscaling, tags = moto
    target = _register(autoscaling, PREVIOUS)

    class SignalledWhileRecording(SuspensionRecord):
        def write(self, previous):
            super().write(previous)
            os.kill(os.getpid(), signal.SIGTERM)  # deferred until the suspension is sent

    record = SignalledWhileRecording(tags, "AllTraffic", lambda previous: _marker())
    reached = []
    with pytest.raises(interrupts.Interrupted), interrupts.handled(), \
            aws.dynamic_scaling_suspended(autoscaling, target, record):
        reached.append("the test body")
    assert reached == []
    assert _state(autoscaling) == PREVIOUS
    assert tags.markers() == {}
    assert "restored as found" in interrupts.fact("scaling")


class LostAnswers:
    """An Application Auto Scaling client whose first suspension takes effect in AWS but
    whose answer is lost (the caller sees a failure)."""

    def __init__(self, real):
        self.real, self.lost = real, False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def register_scalable_target(self, **request):
        answer = self.real.register_scalable_target(**request)
        state = request.get("SuspendedState") or {}
        if not self.lost and state.get("DynamicScalingOutSuspended"):
            self.lost = True
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "lost"}},
                              "RegisterScalableTarget")
        return answer


def test_a_suspension_whose_answer_was_lost_is_restored_not_forgotten(moto):
    autoscaling, tags = moto
    target = _register(autoscaling, PREVIOUS)
    record = SuspensionRecord(tags, "AllTraffic", lambda previous: _marker())
    with pytest.raises(RunError, match="InternalFailure"), \
            aws.dynamic_scaling_suspended(LostAnswers(autoscaling), target, record):
        pass
    assert _state(autoscaling) == PREVIOUS  # AWS had suspended: the restore undid it
    assert tags.markers() == {}


def test_a_stale_marker_does_not_override_a_newer_decision(moto):
    autoscaling, tags = moto
    owner_choice = {**PREVIOUS, "ScheduledScalingSuspended": False}
    _register(autoscaling, owner_choice)  # someone resumed scaling by hand since the crash
    tags.write("AllTraffic", _marker(pid=_dead_pid()))
    (line,) = check_markers("us-east-1", "ep", "AllTraffic", print, now=NOW)
    assert "left as it is now" in line
    assert _state(autoscaling) == owner_choice and tags.markers() == {}


def test_the_next_tune_restores_what_a_killed_run_left_before_anything_else(moto):
    from tuner.config import build_config
    from tuner.scaling.preflight import check_endpoint

    autoscaling, tags = moto
    _register(autoscaling, SUSPENDED)
    tags.write("AllTraffic", _marker(pid=_dead_pid()))
    said = []
    check_endpoint(build_config({}, {"endpoint": "ep", "sla_latency_ms": 100}), said.append)
    assert _state(autoscaling) == PREVIOUS and tags.markers() == {}
    assert "restored dynamic scaling" in said[0]
