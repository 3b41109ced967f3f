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
  on a local runner, with `--processes N`, and across machines.

Output (in the plan's output_dir), written as the test goes so a crash keeps what was
measured: `samples.csv` (one row per request) and `loadtest.json` (steps, verdicts, search
path, generator CPU).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gevent
import psutil
from gevent.pool import Pool
from locust import LoadTestShape, events
from locust.runners import MasterRunner, WorkerRunner

from tuner.analysis import (
    SAMPLE_COLUMNS,
    Sla,
    StepResult,
    StepSpec,
    generator_limit,
    summarize_step,
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
    """The latest step posted to this process; lanes poll it for a step they have not run."""

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None

    def post(self, step: dict[str, Any]) -> None:
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

    def lanes(self) -> int:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            return max(1, runner.worker_count)
        return 1

    def on_done(self, environment=None, msg=None, **_: Any) -> None:
        self.reports.setdefault(msg.data["index"], []).append(msg.data)

    def tick(self) -> tuple[int, float] | None:
        if self.stop_reason is not None:
            return None
        lanes = self.lanes()
        if self.current is not None:
            received = self.reports.get(self.current.index, [])
            waited = time.monotonic() - self.started_at
            limit = self.current.duration_s + self.plan["request_timeout_s"] + 15
            if len(received) < self.current_lanes and waited < limit:
                return lanes, lanes
            self.finish_step(received)
            if self.stop_reason is not None:
                self.write_summary(complete=True)
                return None
        if time.monotonic() < self.resume_at:
            return lanes, lanes  # let the endpoint drain the previous step's backlog
        return self.start_next(lanes)

    def start_next(self, lanes: int) -> tuple[int, float] | None:
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
        self.current, self.current_lanes = spec, lanes
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
        return lanes, lanes

    def finish_step(self, received: list[dict[str, Any]]) -> None:
        spec = self.current
        assert spec is not None
        aborted = [r for r in received if r.get("abort_reason")]
        if aborted:
            first = min(aborted, key=lambda r: r["aborted_at"])
            spec = replace(spec, duration_s=round(first["aborted_at"], 3),
                           abort_reason=first["abort_reason"])
        columns = {c: [] for c in ("intended_s", "completed_s", "latency_ms", "ok")}
        for report in received:
            for name in columns:
                columns[name].extend(report["samples"][name])
        # Raw data first, analysis second: what was measured survives any later failure.
        with self.samples_path.open("a", newline="") as f:
            writer = csv.writer(f)
            for row in zip(columns["intended_s"], columns["completed_s"],
                           columns["latency_ms"], columns["ok"], strict=True):
                writer.writerow((spec.index, f"{row[0]:.6f}", f"{row[1]:.6f}",
                                 f"{row[2]:.3f}", int(row[3])))
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
        if not isinstance(runner, MasterRunner):
            runner.register_message(STEP_MESSAGE,
                                    lambda environment, msg, **_: BOARD.post(msg.data))
        if not isinstance(runner, WorkerRunner):
            CONTROLLER = SearchController(environment, plan)
            runner.register_message(DONE_MESSAGE, CONTROLLER.on_done)

    @events.quitting.add_listener
    def _on_quit(environment, **_: Any) -> None:
        if CONTROLLER is not None and CONTROLLER.stop_reason is None:
            CONTROLLER.stop_reason = "interrupted"
            CONTROLLER.write_summary(complete=False)
