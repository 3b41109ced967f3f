"""Open-loop stepped load for Locust, steered step by step by tuner's search.

Imported only by locustfiles, i.e. only inside the Locust subprocess (gevent-patched).
Never import this from the Prefect/boto3 process.

How it fits Locust's protocols:
- `SearchShape.tick()` (a `LoadTestShape`, runs on the master or the local runner) keeps
  one user per lane and asks the pure `tuner.search.next_step` what load to offer next
  once all lanes have reported the previous step;
- the master posts each step to every worker with a custom message (`tuner_step`);
- each lane (a user) offers its share of the step's rate as *arrivals*: requests start at
  their intended times whatever the endpoint does, and latency is measured from the
  intended time, so a stalled endpoint cannot slow the generator down with it
  (coordinated omission);
- an `events.request` listener files each request under its step by the intended time,
  and each lane sends its step's samples back (`tuner_step_done`), which works the same
  on a local runner, with `--processes N`, and across machines;
- a step is judged only once every lane it started with reported it: a lane that leaves
  or stays silent makes the step invalid and ends the run naming the lane (`tuner.lanes`);
- a worker joins only after a handshake (`tuner_hello`): the same endpoint-tuner and
  protocol version and the same request body, else it is refused and exits with one line;
- every Locust process stops within a second when the tuner process that started it is
  gone (`TUNER_SUPERVISOR_PID`), whatever killed it.

Output (in the plan's output_dir), written as the test goes so a crash keeps what was
measured: `samples.csv` (one row per request) and `loadtest.json` (steps, verdicts, search
path, generator CPU).
"""

from __future__ import annotations

import atexit
import csv
import json
import logging
import math
import os
import random
import socket
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gevent
import psutil
from gevent.pool import Pool
from locust import LoadTestShape, events
from locust.rpc import Message
from locust.runners import (
    STATE_INIT,
    STATE_RUNNING,
    STATE_SPAWNING,
    MasterRunner,
    WorkerRunner,
)

from tuner.analysis import (
    SAMPLE_COLUMNS,
    Sla,
    StepResult,
    StepSpec,
    generator_limit,
    summarize_step,
)
from tuner.lanes import (
    REPORT_GRACE_S,
    check_lanes,
    handshake_problem,
    hello,
    lane_label,
    lost_step_reason,
    wire_version,
)
from tuner.pacing import next_arrival, unsent_arrivals
from tuner.search import (
    SearchSettings,
    budget_advice,
    drain_seconds,
    next_step,
    out_of_budget,
)

PLAN_ENV = "TUNER_PLAN"
STEP_MESSAGE = "tuner_step"
DONE_MESSAGE = "tuner_step_done"
HELLO_MESSAGE = "tuner_hello"
WELCOME_MESSAGE = "tuner_welcome"
REFUSED_MESSAGE = "tuner_refused"
SUPERVISOR_ENV = "TUNER_SUPERVISOR_PID"
SUPERVISOR_POLL_S = 0.5
# A worker whose master has not answered its heartbeats this long stops sending.
MASTER_SILENCE_S = 10.0
# How long a master waits for its workers to connect and be accepted.
WORKER_WAIT_S = 120.0
# A master that has not answered a worker's handshake by then does not speak it.
WELCOME_WAIT_S = 30.0
LIVE_WORKER_STATES = (STATE_INIT, STATE_SPAWNING, STATE_RUNNING)
ARRIVAL_TICK_S = 0.001
log = logging.getLogger("tuner.openloop")


def default_plan() -> dict[str, Any]:
    """The plan when a locustfile runs on its own (`locust -f ... --host URL`)."""
    env = os.environ.get
    return {
        "output_dir": env("TUNER_OUTPUT_DIR", "loadtest-output"),
        "sla": {"percentile": float(env("TUNER_SLA_PERCENTILE", "90")),
                "latency_ms": float(env("TUNER_SLA_LATENCY_MS", "500")),
                "max_error_rate": float(env("TUNER_MAX_ERROR_RATE", "0.01")),
                "confidence": 0.95},
        "search": {"start_rps": float(env("TUNER_START_RPS", "10")),
                   "budget_s": float(env("TUNER_MAX_TEST_SECONDS", "120")),
                   "percentile": float(env("TUNER_SLA_PERCENTILE", "90"))},
        "arrivals": env("TUNER_ARRIVALS", "poisson"),
        "request_timeout_s": float(env("TUNER_REQUEST_TIMEOUT_S", "10")),
        "max_in_flight": int(env("TUNER_MAX_IN_FLIGHT", "8000")),
        "abort": {"error_rate": float(env("TUNER_ABORT_ERROR_RATE", "0.2")),
                  "latency_ms": float(env("TUNER_ABORT_LATENCY_FACTOR", "5"))
                  * float(env("TUNER_SLA_LATENCY_MS", "500")),
                  "after_s": 2.0},
        "payload_file": env("TUNER_PAYLOAD_FILE"),
        "content_type": env("TUNER_CONTENT_TYPE", "application/json"),
        "target": {"kind": "url", "url": env("TUNER_URL")},
    }


def load_plan() -> dict[str, Any]:
    path = os.environ.get(PLAN_ENV)
    if path:
        return json.loads(Path(path).read_text())
    return default_plan()


def load_runtime_plan() -> dict[str, Any]:
    """The plan for a runtime-API locustfile; on its own, the target comes from
    TUNER_ENDPOINT, TUNER_VARIANT and AWS_DEFAULT_REGION."""
    plan = load_plan()
    if plan["target"].get("kind") != "sagemaker":
        plan["target"] = {"kind": "sagemaker", "endpoint": os.environ.get("TUNER_ENDPOINT"),
                          "variant": os.environ.get("TUNER_VARIANT", "AllTraffic"),
                          "region": os.environ.get("AWS_DEFAULT_REGION")}
    return plan


def load_payload(plan: dict[str, Any]) -> bytes:
    if plan.get("payload_file"):
        return Path(plan["payload_file"]).read_bytes()
    return b'{"instances": [[0.1, 0.2, 0.3, 0.4]]}'


class StepBoard:
    """The latest step posted to this process; lanes poll it for a step they have not run.

    A worker's board stays closed until the master accepted the worker's handshake: a
    worker sending another body must not run a step, even one broadcast to it."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self.open = True

    def post(self, step: dict[str, Any]) -> None:
        if self.open:
            self.latest = step

    def wait_newer(self, last_index: int) -> dict[str, Any]:
        while self.latest is None or self.latest["index"] <= last_index:
            gevent.sleep(0.02)
        return self.latest


class Recorder:
    """Per-step request samples of this process, filled by the `events.request` listener."""

    def __init__(self) -> None:
        self.by_step: dict[int, list[tuple[float, float, float, bool]]] = {}

    def on_request(self, context: dict | None = None, exception: Any = None, **_: Any) -> None:
        tag = (context or {}).get("tuner")
        if tag is None:
            return
        step, t0, intended = tag
        now = time.perf_counter() - t0
        latency_ms = (now - intended) * 1000.0
        self.by_step.setdefault(step, []).append((intended, now, latency_ms, exception is None))

    def pop(self, step: int) -> dict[str, list]:
        rows = self.by_step.pop(step, [])
        return {"intended_s": [r[0] for r in rows], "completed_s": [r[1] for r in rows],
                "latency_ms": [r[2] for r in rows], "ok": [r[3] for r in rows]}


BOARD = StepBoard()
RECORDER = Recorder()
events.request.add_listener(RECORDER.on_request)


class OpenLoopLane:
    """Mixin for a Locust User: run every posted step as one lane of open-loop arrivals.

    The concrete user provides `invoke(tag)`, which sends one request and fires
    `events.request` with `context={"tuner": tag}` (HTTP clients do so themselves).
    """

    plan: dict[str, Any]
    invoke: Any  # (tag) -> None, provided by the concrete user

    def run_lanes(self) -> None:
        last = -1
        while True:
            step = BOARD.wait_newer(last)
            last = step["index"]
            self.run_step(step)

    def run_step(self, step: dict[str, Any]) -> None:
        plan = {**self.plan, **step.get("settings", {})}
        rate = step["offered_rps"] / step["lanes"]
        duration = step["duration_s"]
        timeout = plan["request_timeout_s"]
        # Little's law: enough concurrent requests that the rate is never capped by them.
        in_flight = min(plan["max_in_flight"], max(64, math.ceil(rate * timeout * 1.2) + 16))
        pool = Pool(in_flight)
        rng = random.Random()
        poisson = plan.get("arrivals") == "poisson"
        guard = AbortGuard(plan.get("abort"), step["index"])
        lags: list[float] = []
        cpu = psutil.Process()
        cpu.cpu_percent()
        t0 = time.perf_counter()
        intended = rng.uniform(0, 1.0 / rate)  # random phase: lanes interleave
        abort_reason, aborted_at = None, None
        while intended < duration and abort_reason is None:
            now = time.perf_counter() - t0
            if now >= duration:
                break  # the step ends on time; what was not sent by then is counted unsent
            if intended > now:
                # Wake at most once a millisecond and start every arrival then due: at high
                # rates one timer per request costs more than the requests' own work. Latency
                # is measured from each request's intended time either way.
                gevent.sleep(max(intended - now, ARRIVAL_TICK_S))
                now = time.perf_counter() - t0
            abort_reason = guard.check(now)
            while intended <= now and intended < duration and abort_reason is None:
                while pool.full() and abort_reason is None:
                    pool.wait_available(timeout=0.25)
                    abort_reason = guard.check(time.perf_counter() - t0)
                if time.perf_counter() - t0 >= duration:
                    break
                if abort_reason is None:
                    pool.spawn(self.send, step["index"], t0, intended, lags, guard.outstanding)
                    intended = next_arrival(intended, rate, poisson, rng)
            if abort_reason is not None:
                aborted_at = time.perf_counter() - t0
        cpu_percent = cpu.cpu_percent()
        # Arrivals the step scheduled but never sent: the same sequence drawn on to the end.
        unsent = unsent_arrivals(intended, min(duration, aborted_at or duration), rate,
                                 poisson, rng)
        pool.join(timeout=1.0 if abort_reason else timeout + 2)
        abandoned = len(pool)  # still waiting: killed now, yet still queued at the endpoint
        pool.kill()
        samples = RECORDER.pop(step["index"])
        timeout_ms = timeout * 1000.0
        self.environment.runner.send_message(DONE_MESSAGE, {
            "index": step["index"],
            "samples": samples,
            # Timed out or killed: the client gave up, the endpoint may still be at them.
            "unanswered": sum(1 for ok, ms in zip(samples["ok"], samples["latency_ms"],
                                                  strict=True) if not ok and ms >= timeout_ms)
            + abandoned,
            "cpu_percent": cpu_percent,
            "send_lag_p90_ms": _p90_ms(lags),
            "unsent": unsent,
            "scheduled": len(lags) + unsent,
            "abort_reason": abort_reason,
            "aborted_at": aborted_at,
        })

    def send(self, step: int, t0: float, intended: float, lags: list[float],
             outstanding: dict[float, bool]) -> None:
        lags.append(time.perf_counter() - t0 - intended)
        outstanding[intended] = True
        try:
            self.invoke((step, t0, intended))
        except gevent.GreenletExit:
            # Killed unanswered at the step's end: an error like a timeout, reported like
            # any request, so the step's counts and Locust's own cover every request sent.
            self.environment.events.request.fire(
                request_type="POST", name="(abandoned at the step's end)",
                context={"tuner": (step, t0, intended)}, response=None, response_length=0,
                exception=RuntimeError("abandoned unanswered at the end of the step"),
                response_time=(time.perf_counter() - t0 - intended) * 1000.0)
            raise
        finally:
            outstanding.pop(intended, None)


def _p90_ms(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return 1000.0 * ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _unsent_share(received: list[dict[str, Any]]) -> float:
    scheduled = sum(r.get("scheduled", 0) for r in received)
    return sum(r.get("unsent", 0) for r in received) / scheduled if scheduled else 0.0


class AbortGuard:
    """Stopping conditions that protect the endpoint under test.

    Every half second, look at the last second of this lane's step: if the error share is
    above the abort rate, or latency (of completed requests, or the age of the oldest
    requests still waiting) is above the abort latency, for `after_s` in a row, abort.
    """

    def __init__(self, settings: dict[str, float] | None, step: int) -> None:
        self.settings = settings
        self.step = step
        self.outstanding: dict[float, bool] = {}
        self.bad_since: float | None = None
        self.last_check = -1.0

    def check(self, now: float) -> str | None:
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
        recent = []
        for row in reversed(RECORDER.by_step.get(self.step, [])):
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


class SearchController:
    """Master-side state machine: run a step, wait for every lane, judge it, choose next."""

    def __init__(self, environment, plan: dict[str, Any]) -> None:
        self.environment = environment
        self.plan = plan
        self.identity = hello(load_payload(plan), plan.get("content_type", ""),
                              socket.gethostname(), os.getpid())
        self.greetings: dict[str, dict[str, Any]] = {}  # accepted workers' handshakes
        self.refused: dict[str, str] = {}  # refused workers: why, with their label
        options = getattr(environment, "parsed_options", None)
        self.expect_workers = max(1, int(getattr(options, "expect_workers", 1) or 1))
        self.wait_workers_s = float(plan.get("worker_wait_s", WORKER_WAIT_S))
        self.waiting_since: float | None = None
        self.current_lanes_ids: dict[str, str] = {}
        self.last_tick: tuple[int, float] = (0, 1)
        self.sla = Sla(**plan["sla"])
        self.settings = SearchSettings(**plan["search"])
        self.out = Path(plan["output_dir"])
        self.out.mkdir(parents=True, exist_ok=True)
        self.samples_path = self.out / "samples.csv"
        with self.samples_path.open("w", newline="") as f:
            csv.writer(f).writerow(SAMPLE_COLUMNS)
        self.specs: list[StepSpec] = []
        self.results: list[StepResult] = []
        self.step_meta: list[dict[str, Any]] = []
        self.reports: dict[int, list[dict[str, Any]]] = {}
        self.current: StepSpec | None = None
        self.current_lanes = 0
        self.started_at = 0.0
        self.load_seconds = 0.0
        self.stop_reason: str | None = None
        self.started_wall = time.time()
        self.resume_at = 0.0

    def alive_lanes(self) -> set[str]:
        """The lanes connected now: the local process, or the workers not gone missing."""
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            return {node.id for node in list(runner.clients.values())
                    if node.state in LIVE_WORKER_STATES}
        return {"local"}

    def ready_lanes(self) -> dict[str, str] | None:
        """The lanes a step can start with (ids to labels), or None while a connected worker
        is not yet accepted or, before the first step, fewer than expected are."""
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return {"local": lane_label("local", None)}
        alive = self.alive_lanes()
        accepted = {lane: lane_label(lane, self.greetings[lane])
                    for lane in sorted(alive) if lane in self.greetings}
        enough = len(accepted) >= (1 if self.specs else self.expect_workers)
        if enough and len(accepted) == len(alive):
            self.waiting_since = None
            return accepted
        now = time.monotonic()
        self.waiting_since = self.waiting_since or now
        if now - self.waiting_since > self.wait_workers_s:
            self.stop_reason = (f"only {len(accepted)} of {self.expect_workers} workers were "
                                f"accepted within {self.wait_workers_s:.0f} s"
                                + self.refused_note())
            log.warning("stopping: %s", self.stop_reason)
        return None

    def refused_note(self) -> str:
        return "; refused " + "; ".join(self.refused.values()) if self.refused else ""

    def on_hello(self, environment=None, msg=None, **_: Any) -> None:
        """A worker's handshake: accept it, or refuse it (it exits) and carry on without."""
        runner = self.environment.runner
        problem = handshake_problem(self.identity, msg.data or {})
        label = lane_label(msg.node_id, msg.data)
        if problem is None:
            self.greetings[msg.node_id] = msg.data
            runner.send_message(WELCOME_MESSAGE, {"version": self.identity["version"]},
                                client_id=msg.node_id)
            return
        self.refused[msg.node_id] = f"{label}: {problem}"
        log.warning("refused %s: %s", label, problem)
        runner.send_message(REFUSED_MESSAGE, {"error": problem}, client_id=msg.node_id)

    def on_done(self, environment=None, msg=None, **_: Any) -> None:
        self.reports.setdefault(msg.data["index"], []).append({**msg.data,
                                                               "lane": msg.node_id})

    def check_current(self, overdue: bool = False) -> Any:
        """Where the running step stands with its lanes (`tuner.lanes.check_lanes`)."""
        assert self.current is not None
        received = self.reports.get(self.current.index, [])
        waited = time.monotonic() - self.started_at
        limit = self.current.duration_s + self.plan["request_timeout_s"] + REPORT_GRACE_S
        return check_lanes(self.current_lanes_ids, {r["lane"] for r in received},
                           self.alive_lanes(), overdue or waited >= limit)

    def tick(self) -> tuple[int, float] | None:
        if self.stop_reason is not None:
            return None
        if self.current is not None:
            check = self.check_current()
            if check.waiting:
                return self.last_tick
            if check.lost:
                self.lose_step(check.lost)
                return None
            self.finish_step(self.reports.get(self.current.index, []))
            if self.stop_reason is not None:
                self.write_summary(complete=True)
                return None
        if time.monotonic() < self.resume_at:
            return self.last_tick  # let the endpoint drain the previous step's backlog
        lanes = self.ready_lanes()
        if lanes is None:
            if self.stop_reason is not None:
                self.write_summary(complete=True)
                return None
            return self.last_tick  # no user goes to a worker not yet accepted
        return self.start_next(lanes)

    def lose_step(self, lost: tuple[str, ...]) -> None:
        """End the run at a step some lane never reported: its samples are kept as raw
        data, but the step is marked invalid, so neither the search nor the analysis judges
        it on the partial load it got."""
        spec = self.current
        assert spec is not None
        received = self.reports.get(spec.index, [])
        ran_s = min(spec.duration_s, time.monotonic() - self.started_at)
        reason = lost_step_reason(spec.index, spec.offered_rps, lost, len(self.current_lanes_ids))
        spec = replace(spec, duration_s=round(ran_s, 3), invalid_reason=reason)
        self.append_samples(spec.index, received)
        self.specs.append(spec)
        self.step_meta.append({
            "index": spec.index,
            "lanes_expected": self.current_lanes,
            "lanes_reported": len(received),
            "lanes_lost": list(lost),
            "invalid_reason": reason,
            "generator_cpu_percent": [r.get("cpu_percent") for r in received],
            "send_lag_p90_ms": [r.get("send_lag_p90_ms") for r in received],
            "unsent_share": _unsent_share(received),
        })
        self.load_seconds += spec.duration_s
        self.current = None
        self.stop_reason = f"{reason}; the run ended with what was measured before it"
        log.warning("stopping: %s", self.stop_reason)
        self.write_summary(complete=True)

    def on_stopping(self) -> None:
        """Locust stops the test on its own when its last worker quit or went missing:
        say why, naming the lanes, instead of leaving the run 'interrupted'."""
        if self.stop_reason is not None:
            return
        if self.current is not None:
            check = self.check_current()
            if check.lost:
                self.lose_step(check.lost)
                return
        if self.refused and not (self.alive_lanes() & set(self.greetings)):
            self.stop_reason = "no accepted worker left" + self.refused_note()
            log.warning("stopping: %s", self.stop_reason)
            self.write_summary(complete=False)

    def on_exit(self) -> None:
        """A master that gave up waiting for its workers exits without Locust's quitting
        event: still say why, and which workers were refused."""
        self.on_stopping()
        if self.stop_reason is None and not self.specs:
            self.stop_reason = (f"{len(self.greetings)} of {self.expect_workers} workers "
                                "connected and were accepted" + self.refused_note())
            self.write_summary(complete=False)

    def start_next(self, lane_ids: dict[str, str]) -> tuple[int, float] | None:
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
            return None
        spec = replace(spec, timeout_s=self.plan["request_timeout_s"])
        self.current, self.current_lanes, self.current_lanes_ids = spec, lanes, lane_ids
        self.started_at = time.monotonic()
        # Workers on other machines know only their target: the lane settings travel with
        # every step.
        message = {**asdict(spec), "lanes": lanes, "settings": {
            k: self.plan[k] for k in ("request_timeout_s", "abort", "arrivals", "max_in_flight")
            if k in self.plan}}
        log.info("step %d (%s): offering %.1f rps for %.1f s over %d lane(s); %.0f of %.0f s "
                 "of load left", spec.index, spec.phase, spec.offered_rps, spec.duration_s,
                 lanes, self.settings.budget_s - self.load_seconds, self.settings.budget_s)
        self.environment.runner.send_message(STEP_MESSAGE, message)
        self.last_tick = (lanes, lanes)
        return self.last_tick

    def finish_step(self, received: list[dict[str, Any]]) -> None:
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
        self.step_meta.append({
            "index": spec.index,
            "lanes_expected": self.current_lanes,
            "lanes_reported": len(received),
            "generator_cpu_percent": [r.get("cpu_percent") for r in received],
            "send_lag_p90_ms": [r.get("send_lag_p90_ms") for r in received],
            "unsent_share": _unsent_share(received),
        })
        self.load_seconds += spec.duration_s
        self.current = None
        unanswered = sum(r.get("unanswered", 0) for r in received)
        if unanswered:
            # Abandoned requests are still queued at the endpoint: wait for it to catch up,
            # or the next step measures this one's backlog.
            drain = drain_seconds(unanswered, result.achieved_rps)
            self.resume_at = time.monotonic() + drain
            log.info("step %d left %d requests unanswered: pausing %.1f s", spec.index,
                     unanswered, drain)
        limited = generator_limit(self.step_meta[-1]["generator_cpu_percent"],
                                  self.step_meta[-1]["send_lag_p90_ms"], self.sla,
                                  self.step_meta[-1]["unsent_share"])
        if limited and not result.passed:
            self.stop_reason = f"load generator saturated at {spec.offered_rps:g} rps ({limited})"
            log.warning("stopping: %s", self.stop_reason)
        log.info("step %d: %s at %.1f rps (achieved %.1f, p%g %.1f ms, errors %.2f%%) %s",
                 spec.index, result.verdict.upper(), spec.offered_rps, result.achieved_rps,
                 self.sla.percentile, result.sla_percentile_ms, 100 * result.error_rate,
                 "; ".join(result.reasons))
        self.write_summary(complete=False)

    def append_samples(self, index: int, received: list[dict[str, Any]]) -> dict[str, list]:
        """Append the lanes' samples of a step to `samples.csv`; return them as columns."""
        columns: dict[str, list] = {c: [] for c in ("intended_s", "completed_s", "latency_ms",
                                                    "ok")}
        for report in received:
            for name in columns:
                columns[name].extend(report["samples"][name])
        with self.samples_path.open("a", newline="") as f:
            writer = csv.writer(f)
            for row in zip(columns["intended_s"], columns["completed_s"],
                           columns["latency_ms"], columns["ok"], strict=True):
                writer.writerow((index, f"{row[0]:.6f}", f"{row[1]:.6f}",
                                 f"{row[2]:.3f}", int(row[3])))
        return columns

    def write_summary(self, complete: bool) -> None:
        summary = {
            "complete": complete,
            "stop_reason": self.stop_reason,
            "started_at": self.started_wall,
            "finished_at": time.time(),
            "load_seconds": self.load_seconds,
            "plan": self.plan,
            "steps": [asdict(s) for s in self.specs],
            "results": [r.to_dict() for r in self.results],
            "step_meta": self.step_meta,
            "refused_workers": list(self.refused.values()),
        }
        tmp = self.out / "loadtest.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2, default=_json_default))
        tmp.replace(self.out / "loadtest.json")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


CONTROLLER: SearchController | None = None


class SearchShape(LoadTestShape):
    """Locust's shape protocol, delegating every decision to the search controller."""

    def tick(self) -> tuple[int, float] | None:
        return CONTROLLER.tick() if CONTROLLER is not None else None


def install(plan: dict[str, Any]) -> None:
    """Wire the controller and message handlers into Locust once its runner exists."""

    @events.init.add_listener
    def _on_init(environment, **_: Any) -> None:
        global CONTROLLER
        runner = environment.runner
        supervisor = os.environ.get(SUPERVISOR_ENV)
        if supervisor:
            gevent.spawn(watch_supervisor, environment, int(supervisor))
        if not isinstance(runner, MasterRunner):
            runner.register_message(STEP_MESSAGE,
                                    lambda environment, msg, **_: BOARD.post(msg.data))
        if isinstance(runner, WorkerRunner):
            join_master(environment, plan)
        else:
            CONTROLLER = SearchController(environment, plan)
            runner.register_message(DONE_MESSAGE, CONTROLLER.on_done)
        if isinstance(runner, MasterRunner):
            runner.register_message(HELLO_MESSAGE, CONTROLLER.on_hello)
            atexit.register(CONTROLLER.on_exit)

    @events.test_stopping.add_listener
    def _on_stopping(environment, **_: Any) -> None:
        if CONTROLLER is not None:
            CONTROLLER.on_stopping()

    @events.quitting.add_listener
    def _on_quit(environment, **_: Any) -> None:
        if CONTROLLER is not None and CONTROLLER.stop_reason is None:
            CONTROLLER.on_stopping()
        if CONTROLLER is not None and CONTROLLER.stop_reason is None:
            CONTROLLER.stop_reason = "interrupted"
            CONTROLLER.write_summary(complete=False)


def join_master(environment, plan: dict[str, Any]) -> None:
    """The worker's side of the handshake: say who it is and what it sends; run steps only
    once welcomed; on refusal, one line on stderr and exit code 2."""
    runner = environment.runner
    BOARD.open = False

    def welcomed(environment, msg, **_: Any) -> None:
        BOARD.open = True
        log.info("accepted by the master (%s)", msg.data.get("version"))

    def refused(environment, msg, **_: Any) -> None:
        leave(f"the master refused this worker: {msg.data['error']}")

    def leave(problem: str) -> None:
        sys.stderr.write(f"error: {problem}\n")
        sys.stderr.flush()
        environment.process_exit_code = 2
        gevent.spawn(environment.runner.quit)

    def unanswered() -> None:
        gevent.sleep(WELCOME_WAIT_S)
        if not BOARD.open:
            leave(f"the master did not answer this worker's handshake ({wire_version()}) "
                  f"within {WELCOME_WAIT_S:.0f} s: install the same endpoint-tuner version "
                  "on the master and every worker")

    runner.register_message(WELCOME_MESSAGE, welcomed)
    runner.register_message(REFUSED_MESSAGE, refused)
    gevent.spawn(unanswered)
    runner.send_message(HELLO_MESSAGE, hello(load_payload(plan), plan.get("content_type", ""),
                                             socket.gethostname(), os.getpid()))


def supervisor_gone(supervisor_pid: int, parent_pid: int) -> bool:
    """The process that started this one died: this process was handed to another parent,
    or the supervisor no longer runs (a zombie counts as gone)."""
    if os.getppid() != parent_pid:
        return True
    try:
        return psutil.Process(supervisor_pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def master_silent(runner: Any) -> bool:
    """A worker's master stopped answering heartbeats (killed, or the network is gone)."""
    last = getattr(runner, "last_heartbeat_timestamp", None)
    return isinstance(runner, WorkerRunner) and last is not None and (
        time.time() - last > MASTER_SILENCE_S)


def watch_supervisor(environment, supervisor_pid: int) -> None:
    """Never outlive the supervisor: Locust runs in its own session, so no terminal signal
    reaches it, and a SIGKILLed tuner cannot stop it. Poll, and once the tuner (or this
    process's parent, or a worker's master) is gone, tell the workers to quit and exit."""
    parent_pid = os.getppid()
    runner = environment.runner
    while not supervisor_gone(supervisor_pid, parent_pid) and not master_silent(runner):
        gevent.sleep(SUPERVISOR_POLL_S)
    log.error("the process supervising this load test (pid %d) or its master is gone: "
              "stopping the load", supervisor_pid)
    if CONTROLLER is not None and CONTROLLER.stop_reason is None:
        CONTROLLER.stop_reason = f"the supervising tuner process (pid {supervisor_pid}) is gone"
        CONTROLLER.write_summary(complete=False)
    if isinstance(runner, MasterRunner):
        with gevent.Timeout(1.0, False):
            for node in list(runner.clients.values()):
                runner.server.send_to_client(Message("quit", None, node.id))
            gevent.sleep(0.2)  # let the quit messages leave
    logging.shutdown()
    os._exit(3)
