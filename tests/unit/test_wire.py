"""The messages between master, workers and controller: every record the senders build
reads back through `tuner.measure.wire.unserialize`, and every malformed one is refused in one line
naming the message and the field, and costs the run the lane that sent it."""

from __future__ import annotations

import msgpack
import pytest

from tests.unit.test_controller import (
    BODY_SHA256,
    FakeClock,
    make_controller,
    report,
    start,
    written,
)
from tuner.measure.controller import LOCAL_LANE
from tuner.measure.lanes import hello
from tuner.measure.wire import (
    DONE_MESSAGE,
    HELLO_MESSAGE,
    MESSAGES,
    REFUSED_MESSAGE,
    STEP_MESSAGE,
    WELCOME_MESSAGE,
    Refused,
    Welcome,
    WireError,
    unserialize,
)


def test_what_each_sender_builds_reads_back_unchanged_through_msgpack(tmp_path):
    """Through msgpack, as Locust's rpc carries them (tuples arrive as lists, and a value
    msgpack cannot pack, such as a numpy number, fails here rather than in a run)."""
    controller = make_controller(tmp_path, FakeClock())
    step = start(controller)
    records = {HELLO_MESSAGE: hello(BODY_SHA256, "host-a", 7),
               WELCOME_MESSAGE: Welcome(version=str(controller.identity["version"])),
               REFUSED_MESSAGE: Refused(error=controller.admit("w9", {}) or ""),
               STEP_MESSAGE: step, DONE_MESSAGE: report(step)}
    assert set(records) == set(MESSAGES)
    for kind, record in records.items():
        carried = msgpack.unpackb(msgpack.packb(record, use_bin_type=True), raw=False)
        assert unserialize(kind, carried) == record


@pytest.mark.parametrize(("kind", "change", "says"), [
    (STEP_MESSAGE, {"offered_rps": "fast"}, "offered_rps is 'fast', not int or float"),
    (STEP_MESSAGE, {"index": True}, "index is True, not int"),
    (STEP_MESSAGE, {"lanes": None}, "lanes is None, not int"),
    (STEP_MESSAGE, {"settings": {"max_in_flight": 1.5}}, "settings.max_in_flight is 1.5"),
    (DONE_MESSAGE, {"unanswered": -0.5}, "unanswered is -0.5, not int"),
    (DONE_MESSAGE, {"samples": {"ok": []}}, "samples.intended_s is not a list"),
    (DONE_MESSAGE, {"samples": {"intended_s": [1.0], "completed_s": [], "latency_ms": [],
                                "ok": [], "payload": []}}, "sample columns differ in length"),
    (DONE_MESSAGE, {"samples": {"intended_s": [], "completed_s": [], "latency_ms": [],
                                "ok": []}}, "samples.payload is not a list"),
    (HELLO_MESSAGE, {"pid": "12"}, "pid is '12', not int"),
])
def test_a_malformed_record_is_refused_naming_the_message_and_the_field(
        tmp_path, kind, change, says):
    controller = make_controller(tmp_path, FakeClock())
    step = start(controller)
    base = {STEP_MESSAGE: step, DONE_MESSAGE: report(step),
            HELLO_MESSAGE: hello(BODY_SHA256, "host-a", 7)}[kind]
    with pytest.raises(WireError, match=f"^{kind} message") as caught:
        unserialize(kind, {**base, **change})
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_each_record_is_defined_once_and_every_declared_field_is_required(tmp_path):
    """The checks come from the TypedDicts themselves: drop any declared field of what a
    sender builds, and the receiver names it."""
    from typing import get_type_hints

    from tuner.measure import wire

    controller = make_controller(tmp_path, FakeClock())
    step = start(controller)
    built = {HELLO_MESSAGE: (wire.Hello, hello(BODY_SHA256, "host-a", 7)),
             STEP_MESSAGE: (wire.StepOrder, step), DONE_MESSAGE: (wire.LaneReport,
                                                                  report(step))}
    for kind, (record, message) in built.items():
        assert set(get_type_hints(record)) == set(message)
        for name in message:
            with pytest.raises(WireError, match=f"{kind} message without {name}$"):
                unserialize(kind, {k: v for k, v in message.items() if k != name})


def test_missing_fields_unknown_kinds_and_non_records_are_refused():
    with pytest.raises(WireError, match="tuner_welcome message without version"):
        unserialize(WELCOME_MESSAGE, {})
    with pytest.raises(WireError, match="unknown message 'tuner_gossip'"):
        unserialize("tuner_gossip", {})
    with pytest.raises(WireError, match="tuner_step_done message is list, not a record"):
        unserialize(DONE_MESSAGE, [1, 2])


def test_extra_keys_of_a_newer_peer_are_kept(tmp_path):
    step = start(make_controller(tmp_path, FakeClock()))
    assert unserialize(STEP_MESSAGE, {**step, "hint": 1})["hint"] == 1


def test_a_malformed_step_report_loses_its_lane_and_the_step_is_not_judged(tmp_path):
    """Before: the controller read a report by key and fell over on the first missing
    one (or filed garbage as samples). Now the lane is lost, named with why, at once."""
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    garbled = {**report(step), "samples": {"ok": [True]}}
    controller.on_report(LOCAL_LANE, garbled)
    clock.now += 1.0
    assert controller.tick({LOCAL_LANE}).users is None
    assert ("the local Locust process (its report was malformed: tuner_step_done message's "
            "samples.intended_s is not a list) lost during step 0") in controller.stop_reason
    assert controller.results == [] and controller.specs[0].invalid_reason
    assert written(tmp_path)["complete"] is True


def test_a_malformed_handshake_is_refused_with_the_fix(tmp_path):
    controller = make_controller(tmp_path, FakeClock(), distributed=True)
    problem = controller.admit("w1", {"version": controller.identity["version"]})
    assert problem.startswith("tuner_hello message without payload_sha256")
    assert "install the same endpoint-tuner version" in problem
    assert "w1" in controller.refused and "w1" not in controller.greetings


def test_a_handshake_that_is_not_a_record_is_refused_not_a_crash(tmp_path):
    """Before this fix, a list as the handshake reached `lane_label` and raised."""
    controller = make_controller(tmp_path, FakeClock(), distributed=True)
    problem = controller.admit("w2", ["not", "a", "record"])
    assert problem.startswith("tuner_hello message is list, not a record")
    assert controller.refused["w2"].startswith("worker w2: ")
