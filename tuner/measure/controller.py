"""The load test's decisions, as plain classes fed step reports: no Locust, no gevent.

The Locust glue (`loadtests/openloop.py`) only moves messages and time; everything it
decides is here, so a unit test can drive a whole run in-process with fabricated reports
(as Locust's own runner tests do with mocked messages):

- the lane side, in every process that offers load: `Recorder` files each request under
  its step, `AbortGuard` cuts a step short to protect the endpoint, and `lane_report` is
  what a lane sends back when its step ends (its samples, what it left unanswered, how
  far behind it fell);
- the master side (or the local runner): `SearchController` admits workers, starts each
  step the search (`tuner.measure.search.next_step`) asks for, waits for every lane, judges the
  step, pauses while the endpoint drains what the step abandoned, and stops on budget,
  on a generator saturated in a second failing step, on a lost lane or when its workers
  are gone; `RunFiles`
  writes what it measured as it goes (`samples.csv`, `loadtest.json`).

Time comes from the injected clocks, so tests need not sleep.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tuner.measure.analysis import (
    SAMPLE_COLUMNS,
    Sla,
    StepResult,
    StepSpec,
    Verdict,
    step_generator_limit,
    summarize_step,
)
from tuner.measure.lanes import (
    REPORT_GRACE_S,
    LaneCheck,
    check_lanes,
    handshake_problem,
    lane_label,
    lost_step_reason,
)
from tuner.measure.search import (
    SearchSettings,
    budget_advice,
    drain_seconds,
    next_step,
    out_of_budget,
)
from tuner.measure.wire import (
    DONE_MESSAGE,
    HELLO_MESSAGE,
    SAMPLE_FIELDS,
    STEP_SETTINGS,
    LaneReport,
    StepOrder,
    StepSettings,
    WireError,
    unserialize,
)

__all__ = [
    "LOCAL_LANE",
    "STEP_SETTINGS",
    "WORKER_WAIT_S",
    "AbortGuard",
    "Recorder",
    "RunFiles",
    "SearchController",
    "Tick",
    "lane_report",
]

# The tuner process follows this logger's lines in locust.log (`tuner.measure.loadtest.LogTail`).
log = logging.getLogger("tuner.openloop")

# The lane id of a local (not distributed) runner, as Locust names its messages' sender.
LOCAL_LANE = "local"
# How long a master waits for its workers to connect and be accepted.
WORKER_WAIT_S = 120.0

# (intended send time, completion time, latency from the intended time, succeeded, index of
# the payload sent), the times in seconds since the step's start.
Row = tuple[float, float, float, bool, int]


def rejected_status(exception: Any) -> int | None:
    """The HTTP status of an error that says the request itself is bad (4xx), None for
    anything else. Throttling (429, or a ThrottlingException) is load, not a bad request."""
    if exception is None:
        return None
    status = getattr(exception, "status", None)  # loadtests.fastpost.HTTPStatusError
    response = getattr(exception, "response", None)  # botocore's ClientError
    if status is None and isinstance(response, Mapping):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if not isinstance(status, int) or not 400 <= status < 500 or status == 429:
        return None
    if "throttl" in str(exception).lower():
        return None
    return status


class Recorder:
    """Per-step request samples of this process, filled by an `events.request` listener,
    and the requests the endpoint rejected as bad (4xx), by payload."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.by_step: dict[int, list[Row]] = {}
        self.rejected: dict[int, dict[int, int]] = {}  # step -> payload index -> count
        self.rejected_example: dict[int, str] = {}

    def on_request(self, context: dict | None = None, exception: Any = None, **_: Any) -> None:
        """Locust's request event: file the request under the step its tag names, timed
        from its intended send time (tag: step index, step start, intended offset, payload
        index)."""
        tag = (context or {}).get("tuner")
        if tag is None:
            return
        step, t0, intended, payload = tag
        now = self.clock() - t0
        latency_ms = (now - intended) * 1000.0
        self.by_step.setdefault(step, []).append(
            (intended, now, latency_ms, exception is None, payload))
        status = rejected_status(exception)
        if status is not None:
            counts = self.rejected.setdefault(step, {})
            counts[payload] = counts.get(payload, 0) + 1
            # One line: an error body may hold newlines, and the example ends up in the
            # run's one-line error.
            self.rejected_example.setdefault(step, " ".join(str(exception).split())[:200])

    def rows(self, step: int) -> list[Row]:
        return self.by_step.get(step, [])

    def pop_rejected(self, step: int) -> tuple[dict[int, int], str | None]:
        """The step's rejected requests by payload index, and one error's text."""
        return self.rejected.pop(step, {}), self.rejected_example.pop(step, None)

    def pop(self, step: int) -> dict[str, list]:
        rows = self.by_step.pop(step, [])
        return {"intended_s": [r[0] for r in rows], "completed_s": [r[1] for r in rows],
                "latency_ms": [r[2] for r in rows], "ok": [r[3] for r in rows],
                "payload": [r[4] for r in rows]}


class AbortGuard:
    """Stopping conditions that protect the endpoint under test.

    Every half second, look at the last second of this lane's step: if the error share is
    above the abort rate, or latency (of completed requests, or the age of the oldest
    requests still waiting) is above the abort latency, for `after_s` in a row, abort.
    """

    def __init__(self, settings: Mapping[str, float] | None, step: int,
                 recorder: Recorder) -> None:
        self.settings = settings
        self.step = step
        self.recorder = recorder
        # Intended send times of the requests sent and not yet answered.
        self.outstanding: dict[float, bool] = {}
        self.bad_since: float | None = None
        self.last_check = -1.0

    def check(self, now: float) -> str | None:
        """Why to abort the step now (None: carry on); `now` is seconds into the step."""
        if not self.settings or now - self.last_check < 0.5:
            return None
        self.last_check = now
        reason = self._condition(now)
        if reason is None:
            self.bad_since = None
            return None
        if self.bad_since is None:
            self.bad_since = now
        if now - self.bad_since >= self.settings["after_s"]:
            return reason
        return None

    def _condition(self, now: float) -> str | None:
        assert self.settings is not None
        recent = []
        for row in reversed(self.recorder.rows(self.step)):
            if row[1] < now - 1.0:
                break
            recent.append(row)
        limit_ms = self.settings["latency_ms"]
        if len(recent) >= 5:
            errors = sum(1 for r in recent if not r[3]) / len(recent)
            if errors > self.settings["error_rate"]:
                return f"error rate {errors:.0%} above {self.settings['error_rate']:.0%}"
            latencies = sorted(r[2] for r in recent)
            median = latencies[len(latencies) // 2]
            if median > limit_ms:
                return f"median latency {median:.0f} ms above {limit_ms:.0f} ms"
        stuck = sum(1 for sent in self.outstanding if (now - sent) * 1000.0 > limit_ms)
        if stuck >= 5:
            return f"{stuck} requests waiting longer than {limit_ms:.0f} ms"
        return None


def lane_report(index: int, samples: Mapping[str, list], timeout_s: float, abandoned: int,
                cpu_percent: float | None, send_lags_s: list[float], unsent: int,
                abort_reason: str | None, aborted_at: float | None,
                rejected: Mapping[str, int] | None = None,
                rejected_example: str | None = None) -> LaneReport:
    """What a lane sends the master when its step ends (`tuner.measure.wire.LaneReport`).

    `unanswered` counts the requests the client gave up on (timed out, or `abandoned`: still
    waiting when the step ended and killed), which the endpoint may still be working
    through: the master pauses for them before the next step."""
    timeout_ms = timeout_s * 1000.0
    timed_out = sum(1 for ok, ms in zip(samples["ok"], samples["latency_ms"], strict=True)
                    if not ok and ms >= timeout_ms)
    return LaneReport(index=index, samples=dict(samples), unanswered=timed_out + abandoned,
                      cpu_percent=cpu_percent, send_lag_p90_ms=_p90_ms(send_lags_s),
                      unsent=unsent, scheduled=len(send_lags_s) + unsent,
                      abort_reason=abort_reason, aborted_at=aborted_at,
                      rejected=dict(rejected or {}), rejected_example=rejected_example)


# The first step ends the run when the endpoint rejects more than this share of its
# requests as bad (4xx): no rate will do better, and the budget would be spent for nothing.
REJECTED_SHARE_TO_STOP = 0.5


def rejection_problem(index: int, received: list[Mapping[str, Any]],
                      requests: int) -> str | None:
    """Why the run stops after its first step (None: it goes on): the endpoint rejected
    most of its requests as bad, naming the payloads that failed, worst first."""
    if index != 0 or requests == 0:
        return None
    by_payload: dict[str, int] = {}
    for report in received:
        for name, count in report.get("rejected", {}).items():
            by_payload[name] = by_payload.get(name, 0) + count
    total = sum(by_payload.values())
    if total <= REJECTED_SHARE_TO_STOP * requests:
        return None
    worst = sorted(by_payload.items(), key=lambda item: (-item[1], item[0]))
    named = ", ".join(f"{name} ({count})" for name, count in worst[:5])
    more = f" and {len(worst) - 5} more" if len(worst) > 5 else ""
    example = next((r.get("rejected_example") for r in received if r.get("rejected_example")),
                   None)
    return (f"the endpoint rejected {total} of the first step's {requests} requests as bad "
            f"(HTTP 4xx{': ' + example if example else ''}); rejected payloads: {named}{more}: "
            "fix those payloads (or --content-type) and run again")


def _p90_ms(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return 1000.0 * ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _unsent_share(received: list[dict[str, Any]]) -> float:
    scheduled = sum(r.get("scheduled", 0) for r in received)
    return sum(r.get("unsent", 0) for r in received) / scheduled if scheduled else 0.0


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


class RunFiles:
    """The load test's output directory, written as the test goes so a crash keeps what
    was measured: `samples.csv` (one row per request) and `loadtest.json` (replaced whole)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.samples_path = self.out / "samples.csv"
        with self.samples_path.open("w", newline="") as f:
            csv.writer(f).writerow(SAMPLE_COLUMNS)

    def append_samples(self, index: int, columns: Mapping[str, list]) -> None:
        with self.samples_path.open("a", newline="") as f:
            writer = csv.writer(f)
            for row in zip(columns["intended_s"], columns["completed_s"],
                           columns["latency_ms"], columns["ok"], columns["payload"],
                           strict=True):
                writer.writerow((index, f"{row[0]:.6f}", f"{row[1]:.6f}",
                                 f"{row[2]:.3f}", int(row[3]), int(row[4])))

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        tmp = self.out / "loadtest.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
        tmp.replace(self.out / "loadtest.json")


@dataclass(frozen=True)
class Tick:
    """The controller's answer to one shape tick: the users Locust should run (None: stop
    the test), and the step to post to every lane, when one starts now."""

    users: tuple[int, float] | None
    step: StepOrder | None = None


STOP = Tick(users=None)


class SearchController:
    """Master-side state machine: run a step, wait for every lane, judge it, choose next.

    Driven by the glue with plain values: `tick(alive)` on every shape tick, with the lanes
    connected now; `admit` for a worker's handshake; `on_report` for a lane's step report;
    `on_stopping`, `on_exit`, `on_quit`, `supervisor_gone` when Locust stops."""

    def __init__(self, plan: Mapping[str, Any], identity: Mapping[str, object],
                 distributed: bool, expect_workers: int, files: RunFiles,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.plan = plan
        self.identity = identity
        self.distributed = distributed
        self.expect_workers = max(1, expect_workers)
        self.files = files
        self.clock = clock
        self.wall_clock = wall_clock
        self.greetings: dict[str, Mapping[str, object]] = {}  # accepted workers' handshakes
        self.refused: dict[str, str] = {}  # refused workers: why, with their label
        self.wait_workers_s = float(plan.get("worker_wait_s", WORKER_WAIT_S))
        self.waiting_since: float | None = None
        self.current_lanes_ids: dict[str, str] = {}
        self.last_tick: tuple[int, float] = (0, 1)
        self.sla = Sla(**plan["sla"])
        self.settings = SearchSettings(**plan["search"])
        self.specs: list[StepSpec] = []
        self.results: list[StepResult] = []
        self.step_meta: list[dict[str, Any]] = []
        self.reports: dict[int, list[dict[str, Any]]] = {}
        # Lanes whose report of a step was not a LaneReport: (step, why). Lost lanes.
        self.malformed: dict[str, tuple[int | None, str]] = {}
        self.current: StepSpec | None = None
        self.current_lanes = 0
        self.started_at = 0.0
        self.load_seconds = 0.0
        self.stop_reason: str | None = None
        self.rejection: str | None = None  # the endpoint rejected the requests as bad
        # Failing steps the load generator was at its limit in: "rate (why)".
        self.generator_limited: list[str] = []
        self.started_wall = wall_clock()
        self.resume_at = 0.0

    # -- lanes ------------------------------------------------------------------------

    def ready_lanes(self, alive: Collection[str]) -> dict[str, str] | None:
        """The lanes a step can start with (ids to labels), or None while a connected worker
        is not yet accepted or, before the first step, fewer than expected are."""
        if not self.distributed:
            return {LOCAL_LANE: lane_label(LOCAL_LANE, None)}
        accepted = {lane: lane_label(lane, self.greetings[lane])
                    for lane in sorted(alive) if lane in self.greetings}
        enough = len(accepted) >= (1 if self.specs else self.expect_workers)
        if enough and len(accepted) == len(alive):
            self.waiting_since = None
            return accepted
        now = self.clock()
        self.waiting_since = self.waiting_since or now
        if now - self.waiting_since > self.wait_workers_s:
            self.stop_reason = (f"only {len(accepted)} of {self.expect_workers} workers were "
                                f"accepted within {self.wait_workers_s:.0f} s"
                                + self.refused_note())
            log.warning("stopping: %s", self.stop_reason)
        return None

    def refused_note(self) -> str:
        return "; refused " + "; ".join(self.refused.values()) if self.refused else ""

    def admit(self, lane: str, greeting: Mapping[str, object] | None) -> str | None:
        """A worker's handshake: accept it (None), or say why it is refused; the run
        carries on without a refused worker."""
        try:
            greeting = unserialize(HELLO_MESSAGE, greeting)
        except WireError as exc:
            problem = (f"{exc}: install the same endpoint-tuner version on the master and "
                       "every worker")
            # Only a record can label the lane (a list here would break `lane_label`).
            greeting = greeting if isinstance(greeting, Mapping) else None
        else:
            problem = handshake_problem(self.identity, greeting)
        if problem is None:
            self.greetings[lane] = greeting
            return None
        label = lane_label(lane, greeting)
        self.refused[lane] = f"{label}: {problem}"
        log.warning("refused %s: %s", label, problem)
        return problem

    def on_report(self, lane: str, report: object) -> None:
        """A lane's report of a step (`lane_report`). One that is not a `LaneReport` is
        not evidence: the lane is lost for the step it was running, named with why."""
        try:
            checked: LaneReport = unserialize(DONE_MESSAGE, report)
        except WireError as exc:
            index = report.get("index") if isinstance(report, Mapping) else None
            self.malformed[lane] = (index if isinstance(index, int) else None, str(exc))
            log.error("malformed step report from %s: %s", lane, exc)
            return
        self.reports.setdefault(checked["index"], []).append({**checked, "lane": lane})

    def check_current(self, alive: Collection[str], overdue: bool = False) -> LaneCheck:
        """Where the running step stands with its lanes (`tuner.measure.lanes.check_lanes`)."""
        assert self.current is not None
        received = self.reports.get(self.current.index, [])
        # A malformed report counts against the step it named (or the running one, when
        # it named none it could read).
        malformed = {lane: why for lane, (index, why) in self.malformed.items()
                     if index in (None, self.current.index)}
        waited = self.clock() - self.started_at
        limit = self.current.duration_s + self.plan["request_timeout_s"] + REPORT_GRACE_S
        return check_lanes(self.current_lanes_ids, {r["lane"] for r in received},
                           alive, overdue or waited >= limit, malformed)

    # -- the step cycle ---------------------------------------------------------------

    def tick(self, alive: Collection[str]) -> Tick:
        """One tick of Locust's shape: finish the running step once every lane reported
        it, wait out the drain, then start the next step or stop."""
        if self.stop_reason is not None:
            return STOP
        if self.current is not None:
            check = self.check_current(alive)
            if check.waiting:
                return Tick(self.last_tick)
            if check.lost:
                self.lose_step(check.lost)
                return STOP
            self.finish_step(self.reports.get(self.current.index, []))
            if self.stop_reason is not None:
                self.write_summary(complete=True)
                return STOP
        if self.clock() < self.resume_at:
            return Tick(self.last_tick)  # let the endpoint drain the previous step's backlog
        lanes = self.ready_lanes(alive)
        if lanes is None:
            if self.stop_reason is not None:
                self.write_summary(complete=True)
                return STOP
            return Tick(self.last_tick)  # no user goes to a worker not yet accepted
        return self.start_next(lanes)

    def start_next(self, lane_ids: dict[str, str]) -> Tick:
        """Start the step the search asks for on these lanes, or stop: budget spent or
        search complete."""
        lanes = len(lane_ids)
        spec = next_step(self.results, self.settings, self.load_seconds)
        if spec is None:
            self.stop_reason = ("budget exhausted"
                                if out_of_budget(self.settings, self.load_seconds)
                                else "search complete")
            advice = budget_advice(self.results, self.settings, self.load_seconds)
            if advice:
                self.stop_reason += f"; {advice}"
                log.warning("%s", advice)
            self.write_summary(complete=True)
            return STOP
        spec = replace(spec, timeout_s=self.plan["request_timeout_s"])
        self.current, self.current_lanes, self.current_lanes_ids = spec, lanes, lane_ids
        self.started_at = self.clock()
        settings: StepSettings = {k: self.plan[k]  # type: ignore[misc]
                                  for k in STEP_SETTINGS if k in self.plan}
        message = StepOrder(**asdict(spec), lanes=lanes, settings=settings)
        log.info("step %d (%s): offering %.1f rps for %.1f s over %d lane(s); %.0f of %.0f s "
                 "of load left", spec.index, spec.phase, spec.offered_rps, spec.duration_s,
                 lanes, self.settings.budget_s - self.load_seconds, self.settings.budget_s)
        self.last_tick = (lanes, lanes)
        return Tick(self.last_tick, step=message)

    def finish_step(self, received: list[dict[str, Any]]) -> None:
        """Judge a step every lane reported: cut at the first abort, pause for what it
        abandoned, go on below a fail the generator may have caused and stop at a second."""
        spec = self.current
        assert spec is not None
        aborted = [r for r in received if r.get("abort_reason")]
        if aborted:
            first = min(aborted, key=lambda r: r["aborted_at"])
            spec = replace(spec, duration_s=round(first["aborted_at"], 3),
                           abort_reason=first["abort_reason"])
        # Raw data first, analysis second: what was measured survives any later failure.
        columns = self.append_samples(spec.index, received)
        result = summarize_step(spec, columns["intended_s"], columns["completed_s"],
                                columns["latency_ms"], columns["ok"], self.sla)
        self.specs.append(spec)
        self.results.append(result)
        self.step_meta.append(self._meta(spec.index, received))
        self.load_seconds += spec.duration_s
        self.current = None
        unanswered = sum(r.get("unanswered", 0) for r in received)
        if unanswered:
            # Abandoned requests are still queued at the endpoint: wait for it to catch up,
            # or the next step measures this one's backlog.
            drain = drain_seconds(unanswered, result.achieved_rps)
            self.resume_at = self.clock() + drain
            log.info("step %d left %d requests unanswered: pausing %.1f s", spec.index,
                     unanswered, drain)
        limited = step_generator_limit(self.step_meta[-1], self.sla)
        if limited and result.verdict is Verdict.FAIL:
            # The generator may have failed this step, not the endpoint: the search goes
            # on below it, where a fail the generator kept up with bounds the capacity on
            # its own (the analysis does not count this one). A second such step says the
            # generator is the limit where the answer lies: stop.
            self.generator_limited.append(f"{spec.offered_rps:g} rps ({limited})")
            if len(self.generator_limited) > 1:
                self.stop_reason = ("load generator saturated at "
                                    + " and ".join(self.generator_limited))
                log.warning("stopping: %s", self.stop_reason)
            else:
                log.warning("step %d failed with the load generator at its limit (%s): not "
                            "counted; the search goes on below it", spec.index, limited)
        # Every request the step sent (its warm-up included), as the rejections are counted.
        rejection = rejection_problem(spec.index, received, len(columns["ok"]))
        if rejection is not None:
            self.rejection = self.stop_reason = rejection
            log.warning("stopping: %s", rejection)
        log.info("step %d: %s at %.1f rps (achieved %.1f, p%g %.1f ms, errors %.2f%%) %s",
                 spec.index, result.verdict.upper(), spec.offered_rps, result.achieved_rps,
                 self.sla.percentile, result.sla_percentile_ms, 100 * result.error_rate,
                 "; ".join(result.reasons))
        self.write_summary(complete=False)

    def lose_step(self, lost: tuple[str, ...]) -> None:
        """End the run at a step some lane never reported: its samples are kept as raw
        data, but the step is marked invalid, so neither the search nor the analysis judges
        it on the partial load it got."""
        spec = self.current
        assert spec is not None
        received = self.reports.get(spec.index, [])
        ran_s = min(spec.duration_s, self.clock() - self.started_at)
        reason = lost_step_reason(spec.index, spec.offered_rps, lost, len(self.current_lanes_ids))
        spec = replace(spec, duration_s=round(ran_s, 3), invalid_reason=reason)
        self.append_samples(spec.index, received)
        self.specs.append(spec)
        meta = self._meta(spec.index, received)
        # Same key order as before the lost-lane keys existed, for readers of the file.
        self.step_meta.append({
            "index": meta["index"],
            "lanes_expected": meta["lanes_expected"],
            "lanes_reported": meta["lanes_reported"],
            "lanes_lost": list(lost),
            "invalid_reason": reason,
            "generator_cpu_percent": meta["generator_cpu_percent"],
            "send_lag_p90_ms": meta["send_lag_p90_ms"],
            "unsent_share": meta["unsent_share"],
        })
        self.load_seconds += spec.duration_s
        self.current = None
        self.stop_reason = f"{reason}; the run ended with what was measured before it"
        log.warning("stopping: %s", self.stop_reason)
        self.write_summary(complete=True)

    def _meta(self, index: int, received: list[dict[str, Any]]) -> dict[str, Any]:
        """What the generator itself showed during a step."""
        return {
            "index": index,
            "lanes_expected": self.current_lanes,
            "lanes_reported": len(received),
            "generator_cpu_percent": [r.get("cpu_percent") for r in received],
            "send_lag_p90_ms": [r.get("send_lag_p90_ms") for r in received],
            "unsent_share": _unsent_share(received),
        }

    # -- the run ends -----------------------------------------------------------------

    def on_stopping(self, alive: Collection[str]) -> None:
        """Locust stops the test on its own when its last worker quit or went missing:
        say why, naming the lanes, instead of leaving the run 'interrupted'."""
        if self.stop_reason is not None:
            return
        if self.current is not None:
            check = self.check_current(alive)
            if check.lost:
                self.lose_step(check.lost)
                return
        if self.refused and not (set(alive) & set(self.greetings)):
            self.stop_reason = "no accepted worker left" + self.refused_note()
            log.warning("stopping: %s", self.stop_reason)
            self.write_summary(complete=False)

    def on_exit(self, alive: Collection[str]) -> None:
        """A master that gave up waiting for its workers exits without Locust's quitting
        event: still say why, and which workers were refused."""
        self.on_stopping(alive)
        if self.stop_reason is None and not self.specs:
            self.stop_reason = (f"{len(self.greetings)} of {self.expect_workers} workers "
                                "connected and were accepted" + self.refused_note())
            self.write_summary(complete=False)

    def on_quit(self, alive: Collection[str]) -> None:
        """Locust quits: a run that ended for no reason given yet was interrupted."""
        if self.stop_reason is None:
            self.on_stopping(alive)
        if self.stop_reason is None:
            self.stop_reason = "interrupted"
            self.write_summary(complete=False)

    def supervisor_gone(self, supervisor_pid: int) -> None:
        """The tuner process that started this load test is gone: say so in the results."""
        if self.stop_reason is None:
            self.stop_reason = f"the supervising tuner process (pid {supervisor_pid}) is gone"
            self.write_summary(complete=False)

    # -- output -----------------------------------------------------------------------

    def append_samples(self, index: int, received: list[dict[str, Any]]) -> dict[str, list]:
        """Append the lanes' samples of a step to `samples.csv`; return them as columns."""
        columns: dict[str, list] = {c: [] for c in SAMPLE_FIELDS}
        for report in received:
            for name in columns:
                columns[name].extend(report["samples"][name])
        self.files.append_samples(index, columns)
        return columns

    def summary(self, complete: bool) -> dict[str, Any]:
        return {
            "complete": complete,
            "stop_reason": self.stop_reason,
            "started_at": self.started_wall,
            "finished_at": self.wall_clock(),
            "load_seconds": self.load_seconds,
            "plan": self.plan,
            "steps": [asdict(s) for s in self.specs],
            "results": [r.to_dict() for r in self.results],
            "step_meta": self.step_meta,
            "refused_workers": list(self.refused.values()),
            "rejected": self.rejection,
        }

    def write_summary(self, complete: bool) -> None:
        self.files.write_summary(self.summary(complete))
