"""The load test's decisions, driven in-process with fabricated step reports.

No Locust and no clock: each test plays the glue's part (a shape tick, a lane's report, a
worker's handshake) against `tuner.measure.controller`, as Locust's own runner tests feed their
runners mocked messages. Each runs in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuner.measure.controller import (
    LOCAL_LANE,
    AbortGuard,
    Recorder,
    RunFiles,
    SearchController,
    lane_report,
)
from tuner.measure.lanes import hello

SLA_MS = 100.0
TIMEOUT_S = 2.0
BODY_SHA256 = "a" * 64  # a payload set's hash (`PayloadSet.sha256()`)


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_plan(tmp_path: Path, budget_s: float = 60.0, **extra: Any) -> dict[str, Any]:
    return {
        "output_dir": str(tmp_path),
        "sla": {"percentile": 90.0, "latency_ms": SLA_MS, "max_error_rate": 0.01,
                "confidence": 0.95},
        "search": {"start_rps": 20.0, "budget_s": budget_s, "percentile": 90.0,
                   "sla_latency_ms": SLA_MS, "min_step_s": 3.0, "warmup_s": 1.0},
        "request_timeout_s": TIMEOUT_S,
        "max_in_flight": 100,
        "arrivals": "constant",
        "abort": {"error_rate": 0.2, "latency_ms": 5 * SLA_MS, "after_s": 2.0},
        "content_type": "application/json",
        **extra,
    }


def identity(pid: int = 1) -> dict[str, object]:
    return hello(BODY_SHA256, "host-a", pid)


def make_controller(tmp_path: Path, clock: FakeClock, distributed: bool = False,
                    expect_workers: int = 1, **plan: Any) -> SearchController:
    return SearchController(make_plan(tmp_path, **plan), identity(), distributed,
                            expect_workers, RunFiles(tmp_path), clock=clock,
                            wall_clock=lambda: 0.0)


def samples(step: dict[str, Any], latency_ms: float, ok: bool = True,
            share: float = 1.0) -> dict[str, list]:
    """A lane's samples for its share of a step: evenly spaced arrivals, one latency."""
    rate = step["offered_rps"] / step["lanes"] * share
    count = int(rate * step["duration_s"])
    intended = [i / rate for i in range(count)]
    return {"intended_s": intended,
            "completed_s": [t + latency_ms / 1000.0 for t in intended],
            "latency_ms": [latency_ms] * count, "ok": [ok] * count, "payload": [0] * count}


def report(step: dict[str, Any], latency_ms: float = 20.0, ok: bool = True, *,
           abandoned: int = 0, cpu_percent: float = 30.0, abort_reason: str | None = None,
           aborted_at: float | None = None, unsent: int = 0) -> dict[str, Any]:
    """What one lane reports, built as the lane builds it (`lane_report`)."""
    columns = samples(step, latency_ms, ok)
    return lane_report(step["index"], columns, TIMEOUT_S, abandoned, cpu_percent,
                       [0.001] * len(columns["ok"]), unsent, abort_reason, aborted_at)


def start(controller: SearchController, alive: set[str] = frozenset({LOCAL_LANE})
          ) -> dict[str, Any]:
    """Tick until a step starts; return the message the glue would post to every lane."""
    tick = controller.tick(alive)
    assert tick.step is not None, (tick, controller.stop_reason)
    assert tick.users == (tick.step["lanes"], tick.step["lanes"])
    return tick.step


def written(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "loadtest.json").read_text())


# -- the step cycle ---------------------------------------------------------------------


def test_a_step_is_judged_only_once_its_lane_reported_then_the_next_one_starts(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    assert step["index"] == 0 and step["lanes"] == 1
    assert step["settings"]["request_timeout_s"] == TIMEOUT_S
    clock.now += step["duration_s"]
    waiting = controller.tick({LOCAL_LANE})
    assert waiting.step is None and waiting.users == (1, 1) and not controller.results

    controller.on_report(LOCAL_LANE, report(step))
    following = start(controller)
    assert following["index"] == 1 and following["offered_rps"] > step["offered_rps"]
    assert [r.verdict for r in controller.results] == ["pass"]
    summary = written(tmp_path)
    assert summary["complete"] is False and len(summary["steps"]) == 1
    rows = (tmp_path / "samples.csv").read_text().splitlines()
    assert rows[0] == "step,intended_s,completed_s,latency_ms,ok,payload"
    assert len(rows) - 1 == len(report(step)["samples"]["ok"])


def test_an_aborted_step_is_cut_at_the_first_lanes_abort(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock, distributed=True, expect_workers=2)
    for lane in ("w1", "w2"):
        assert controller.admit(lane, identity(pid=len(lane))) is None
    step = start(controller, {"w1", "w2"})
    assert step["lanes"] == 2
    controller.on_report("w1", report(step, 900.0, abort_reason="median latency 900 ms",
                                      aborted_at=2.5))
    controller.on_report("w2", report(step, 900.0, abort_reason="error rate 50% above 20%",
                                      aborted_at=1.75))
    controller.tick({"w1", "w2"})
    spec = controller.specs[0]
    assert spec.duration_s == 1.75 and spec.abort_reason == "error rate 50% above 20%"
    assert controller.results[0].abort_reason.startswith("after 1.8 s: error rate")
    assert controller.results[0].verdict == "fail"
    assert controller.load_seconds == 1.75


def test_the_next_step_waits_while_the_endpoint_drains_what_a_step_abandoned(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    clock.now += step["duration_s"]
    # Timed out (a failed request at the timeout) and abandoned (killed at the step's end)
    # both left work queued at the endpoint.
    lane = report(step, TIMEOUT_S * 1000.0, ok=False, abandoned=7)
    assert lane["unanswered"] == len(lane["samples"]["ok"]) + 7
    controller.on_report(LOCAL_LANE, lane)
    held = controller.tick({LOCAL_LANE})
    assert held.step is None and held.users == (1, 1)
    assert controller.resume_at > clock.now
    clock.now = controller.resume_at - 0.01
    assert controller.tick({LOCAL_LANE}).step is None
    clock.now = controller.resume_at
    assert start(controller)["index"] == 1


def test_a_step_without_unanswered_requests_does_not_pause(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    controller.on_report(LOCAL_LANE, report(step))
    assert start(controller)["index"] == 1
    assert controller.resume_at == 0.0


def test_a_failed_step_on_a_saturated_generator_is_not_the_end_but_a_second_one_is(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    first = start(controller)
    controller.on_report(LOCAL_LANE, report(first, 5 * SLA_MS, cpu_percent=97.0))
    # The generator may have failed it: the search goes on below that rate.
    second = start(controller)
    assert controller.stop_reason is None
    assert second["offered_rps"] < first["offered_rps"]
    controller.on_report(LOCAL_LANE, report(second, 5 * SLA_MS, cpu_percent=95.0))
    assert controller.tick({LOCAL_LANE}).users is None
    assert controller.stop_reason == (
        f"load generator saturated at {first['offered_rps']:g} rps (load generator CPU at 97% "
        f"of a core) and {second['offered_rps']:g} rps (load generator CPU at 95% of a core)")
    assert written(tmp_path)["complete"] is True
    assert controller.tick({LOCAL_LANE}).users is None  # stopped stays stopped


def test_a_first_step_the_endpoint_mostly_rejected_ends_the_run_naming_the_payloads(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    lane = report(step, 1.0, ok=False)
    sent = len(lane["samples"]["ok"])
    lane.update(rejected={"bad.json": sent - 1}, rejected_example="HTTP 400: invalid JSON")
    controller.on_report(LOCAL_LANE, lane)
    assert controller.tick({LOCAL_LANE}).users is None
    assert controller.stop_reason.startswith(f"the endpoint rejected {sent - 1} of the first "
                                             f"step's {sent} requests as bad")
    assert "bad.json" in controller.stop_reason
    assert written(tmp_path)["rejected"] == controller.stop_reason


def test_a_first_step_with_a_few_rejections_carries_on(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    lane = report(step)
    lane.update(rejected={"bad.json": 1}, rejected_example="HTTP 400")
    controller.on_report(LOCAL_LANE, lane)
    controller.tick({LOCAL_LANE})
    assert controller.stop_reason is None and written(tmp_path)["rejected"] is None


def test_a_generator_that_could_not_send_its_arrivals_is_saturated_too(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    lane = report(step, 5 * SLA_MS, unsent=40)
    controller.on_report(LOCAL_LANE, lane)
    again = start(controller)
    controller.on_report(LOCAL_LANE, report(again, 5 * SLA_MS, unsent=40))
    assert controller.tick({LOCAL_LANE}).users is None
    assert controller.stop_reason.count("could not send") == 2
    assert controller.step_meta[0]["unsent_share"] == pytest.approx(
        40 / (len(lane["samples"]["ok"]) + 40))


def test_a_busy_generator_under_an_inconclusive_step_is_no_strike(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    for _ in range(2):
        lane = report(step, cpu_percent=97.0)
        columns = lane["samples"]
        for i in range(0, len(columns["ok"]), 10):  # the share a p90 allows: inconclusive
            columns["latency_ms"][i] = 5 * SLA_MS
            columns["completed_s"][i] = columns["intended_s"][i] + 5 * SLA_MS / 1000
        controller.on_report(LOCAL_LANE, lane)
        step = start(controller)  # judges this step, starts the next
        assert controller.results[-1].verdict == "inconclusive"
    assert controller.stop_reason is None and controller.generator_limited == []


def test_a_busy_generator_under_a_passing_step_carries_on(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    controller.on_report(LOCAL_LANE, report(step, cpu_percent=97.0))
    assert start(controller)["index"] == 1
    assert controller.stop_reason is None


def test_a_lane_lost_mid_step_ends_the_run_naming_it_and_the_step_is_not_judged(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock, distributed=True, expect_workers=2)
    controller.admit("w1", hello(BODY_SHA256, "host-b", 11))
    controller.admit("w2", hello(BODY_SHA256, "host-c", 12))
    step = start(controller, {"w1", "w2"})
    controller.on_report("w1", report(step))
    clock.now += 1.5
    assert controller.tick({"w1", "w2"}).users == (2, 2)  # w2 is still running its share
    assert controller.tick({"w1"}).users is None  # w2 left without reporting
    assert "worker host-c pid 12 (w2) lost during step 0" in controller.stop_reason
    spec = controller.specs[0]
    assert spec.invalid_reason and spec.duration_s == 1.5
    assert controller.results == []  # not judged
    meta = written(tmp_path)["step_meta"][0]
    assert meta["lanes_lost"] == ["worker host-c pid 12 (w2)"]
    assert (meta["lanes_expected"], meta["lanes_reported"]) == (2, 1)
    assert written(tmp_path)["complete"] is True


def test_a_lane_silent_past_the_step_and_its_grace_is_lost_too(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    step = start(controller)
    clock.now += step["duration_s"] + TIMEOUT_S + 1.0
    assert controller.tick({LOCAL_LANE}).users == (1, 1)
    clock.now += 60.0
    assert controller.tick({LOCAL_LANE}).users is None
    assert "the local Locust process (no report) lost during step 0" in controller.stop_reason


def test_the_run_stops_when_the_load_budget_is_spent(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock, budget_s=12.0)
    steps = 0
    while True:
        tick = controller.tick({LOCAL_LANE})
        if tick.step is None:
            break
        steps += 1
        controller.on_report(LOCAL_LANE, report(tick.step))
    assert tick.users is None
    assert controller.stop_reason.startswith("budget exhausted")
    assert 1 <= steps == len(controller.results)
    assert controller.load_seconds <= 12.0 + 1e-9
    assert written(tmp_path)["complete"] is True


# -- workers joining and leaving --------------------------------------------------------


def test_the_first_step_waits_for_every_expected_worker_to_be_accepted(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock, distributed=True, expect_workers=2)
    assert controller.admit("w1", identity()) is None
    assert controller.tick({"w1"}).step is None  # one of two
    assert controller.tick({"w1", "w2"}).step is None  # w2 connected, not yet accepted
    assert controller.admit("w2", identity()) is None
    assert start(controller, {"w1", "w2"})["lanes"] == 2


def test_a_worker_with_another_body_is_refused_and_the_wait_ends_naming_it(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock, distributed=True, expect_workers=1,
                                 worker_wait_s=5.0)
    other = hello("b" * 64, "host-x", 77)
    problem = controller.admit("wx", other)
    assert problem is not None and "--payload" in problem
    assert controller.tick({"wx"}).users is not None  # still waiting
    clock.now += 6.0
    assert controller.tick({"wx"}).users is None
    assert controller.stop_reason.startswith("only 0 of 1 workers were accepted within 5 s")
    assert "refused worker host-x pid 77 (wx)" in controller.stop_reason
    assert written(tmp_path)["refused_workers"] == [controller.refused["wx"]]


def test_locust_stopping_with_only_refused_workers_says_so(tmp_path):
    controller = make_controller(tmp_path, FakeClock(), distributed=True)
    controller.admit("wx", hello("c" * 64, "h", 1))
    controller.on_stopping(set())
    assert controller.stop_reason.startswith("no accepted worker left; refused worker h")


def test_a_quit_for_no_given_reason_is_an_interruption(tmp_path):
    clock = FakeClock()
    controller = make_controller(tmp_path, clock)
    start(controller)
    controller.on_quit({LOCAL_LANE})
    assert controller.stop_reason == "interrupted"
    assert written(tmp_path)["complete"] is False


def test_a_master_that_exits_before_any_step_names_the_workers_it_got(tmp_path):
    controller = make_controller(tmp_path, FakeClock(), distributed=True, expect_workers=3)
    controller.admit("w1", identity())
    controller.on_exit({"w1"})
    assert controller.stop_reason == "1 of 3 workers connected and were accepted"


def test_a_gone_supervisor_is_the_reason_unless_one_was_given(tmp_path):
    controller = make_controller(tmp_path, FakeClock())
    controller.supervisor_gone(4242)
    assert controller.stop_reason == "the supervising tuner process (pid 4242) is gone"
    controller.supervisor_gone(1)
    assert "4242" in controller.stop_reason


# -- the lane side ----------------------------------------------------------------------


def test_the_recorder_files_tagged_requests_under_their_step_from_the_intended_time():
    now = [10.5]
    recorder = Recorder(clock=lambda: now[0])
    recorder.on_request(context={"tuner": (3, 10.0, 0.25, 0)})
    recorder.on_request(context={"tuner": (3, 10.0, 0.4, 2)}, exception=RuntimeError("x"))
    recorder.on_request(context={}, exception=None)  # not the tuner's: ignored
    recorder.on_request(context=None)
    columns = recorder.pop(3)
    assert columns["intended_s"] == [0.25, 0.4]
    assert columns["latency_ms"] == pytest.approx([250.0, 100.0])
    assert columns["ok"] == [True, False]
    assert columns["payload"] == [0, 2]
    assert recorder.pop(3) == {"intended_s": [], "completed_s": [], "latency_ms": [],
                               "ok": [], "payload": []}


def guard_with(rows: list[tuple[float, float, float, bool, int]]) -> AbortGuard:
    recorder = Recorder()
    recorder.by_step[0] = rows
    return AbortGuard({"error_rate": 0.2, "latency_ms": 500.0, "after_s": 2.0}, 0, recorder)


def test_the_abort_guard_aborts_only_after_errors_persist_for_after_s():
    rows = [(t / 10, t / 10 + 0.01, 10.0, t % 2 == 0, 0) for t in range(200)]  # 50% errors
    guard = guard_with(rows)
    assert guard.check(9.0) is None  # bad, but only just
    assert guard.check(10.0) is None
    assert guard.check(11.0) == "error rate 50% above 20%"


def test_the_abort_guard_forgives_a_bad_spell_that_ends():
    rows = [(t / 10, t / 10 + 0.6, 600.0, True, 0) for t in range(50)]
    guard = guard_with(rows)
    assert guard.check(5.0) is None
    assert guard.bad_since == 5.0
    assert guard.check(6.5) is None  # the slow requests are more than a second old
    assert guard.bad_since is None


def test_the_abort_guard_counts_requests_stuck_without_an_answer():
    guard = guard_with([])
    guard.outstanding.update({t / 10: True for t in range(6)})
    assert guard.check(1.0) is None
    assert guard.check(3.0) == "6 requests waiting longer than 500 ms"


def test_a_lane_without_abort_settings_never_aborts():
    rows = [(t / 10, t / 10, 9999.0, False) for t in range(100)]
    recorder = Recorder()
    recorder.by_step[0] = rows
    guard = AbortGuard(None, 0, recorder)
    assert guard.check(5.0) is None and guard.check(50.0) is None


def test_a_lane_report_counts_timeouts_and_abandoned_requests_as_unanswered():
    columns = {"intended_s": [0.0, 0.1, 0.2], "completed_s": [0.1, 2.1, 0.3],
               "latency_ms": [100.0, 2000.0, 100.0], "ok": [True, False, False],
               "payload": [0, 0, 0]}
    lane = lane_report(4, columns, 2.0, abandoned=3, cpu_percent=12.0,
                       send_lags_s=[0.001, 0.002, 0.010], unsent=2, abort_reason=None,
                       aborted_at=None)
    assert lane["unanswered"] == 1 + 3  # the fast error was answered
    assert lane["scheduled"] == 3 + 2
    assert lane["send_lag_p90_ms"] == pytest.approx(10.0)
    assert lane["samples"] == columns and lane["index"] == 4
