"""Open-loop stepped load for Locust, steered step by step by tuner's search.

Imported only by locustfiles, i.e. only inside the Locust subprocess (gevent-patched).
Never import this from the Prefect/boto3 process.

This module is glue only: every decision (which step next, when to stop, aborts, the drain
before the next step, a saturated generator, lost lanes) is made by the plain classes of
`tuner.measure.controller`, which the unit tests drive in-process. Importing it creates nothing:
the locustfile calls `install(plan, payloads)`, and Locust's `init` event then makes each run's
collaborators on its environment (the lanes' board and recorder, the recorder listening on
`environment.events`; the controller, owned by the shape) and registers every message.

How it fits Locust's protocols:
- `SearchShape.tick()` (a `LoadTestShape`, runs on the master or the local runner) keeps
  one user per lane and asks its controller (`tuner.measure.controller.SearchController`, which
  asks `tuner.measure.search.next_step`) what load to offer next once all lanes have reported the
  previous step;
- the master posts each step to every worker with a custom message (`tuner_step`);
- each lane (a user) offers its share of the step's rate as *arrivals*: requests start at
  their intended times whatever the endpoint does, and latency is measured from the
  intended time, so a stalled endpoint cannot slow the generator down with it
  (coordinated omission);
- an `events.request` listener files each request under its step by the intended time,
  and each lane sends its step's samples back (`tuner_step_done`), which works the same
  on a local runner, with `--processes N`, and across machines;
- a step is judged only once every lane it started with reported it: a lane that leaves
  or stays silent makes the step invalid and ends the run naming the lane (`tuner.measure.lanes`);
- a worker joins only after a handshake (`tuner_hello`): the same endpoint-tuner and
  protocol version and the same payload set (its hash), else it is refused and exits with
  one line;
- each request sends a payload drawn from the run's set (`load_payloads`; by weight, with a
  generator seeded per step from the plan's `payload_seed`, so every lane draws the same
  sequence) and its index travels in the request's tag into `samples.csv`;
- every Locust process stops within a second when the tuner process that started it is
  gone (`TUNER_SUPERVISOR_PID`), whatever killed it.

Output (in the plan's output_dir), written as the test goes so a crash keeps what was
measured: `samples.csv` (one row per request) and `loadtest.json` (steps, verdicts, search
path, generator CPU).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import random
import socket
import sys
import time
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

from tuner.measure.controller import (
    LOCAL_LANE,
    AbortGuard,
    Recorder,
    RunFiles,
    SearchController,
    lane_report,
)
from tuner.measure.lanes import hello, wire_version
from tuner.measure.pacing import next_arrival, unsent_arrivals
from tuner.measure.payloads import (
    DEFAULT_BODY,
    DEFAULT_CONTENT_TYPE,
    PayloadPicker,
    PayloadSet,
    single_payload_set,
)
from tuner.measure.wire import (
    DONE_MESSAGE,
    HELLO_MESSAGE,
    REFUSED_MESSAGE,
    STEP_MESSAGE,
    WELCOME_MESSAGE,
    Refused,
    StepOrder,
    Welcome,
    WireError,
    unserialize,
)
from tuner.status import TargetKind

PLAN_ENV = "TUNER_PLAN"
SUPERVISOR_ENV = "TUNER_SUPERVISOR_PID"
SUPERVISOR_POLL_S = 0.5
# A worker whose master has not answered its heartbeats this long stops sending.
MASTER_SILENCE_S = 10.0
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
        "target": {"kind": TargetKind.URL, "url": env("TUNER_URL")},
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
    if plan["target"].get("kind") != TargetKind.SAGEMAKER_RUNTIME:
        plan["target"] = {"kind": TargetKind.SAGEMAKER_RUNTIME,
                          "endpoint": os.environ.get("TUNER_ENDPOINT"),
                          "variant": os.environ.get("TUNER_VARIANT", "AllTraffic"),
                          "region": os.environ.get("AWS_DEFAULT_REGION")}
    return plan


def load_payloads(plan: dict[str, Any]) -> PayloadSet:
    """The bodies this process sends: the payload set the tuner wrote for the run
    (`payloads.jsonl`, every body prepared once), or on its own one body file (or the
    built-in example)."""
    if plan.get("payload_set_file"):
        return PayloadSet.from_jsonl(Path(plan["payload_set_file"]).read_bytes())
    content_type = plan.get("content_type", DEFAULT_CONTENT_TYPE)
    if plan.get("payload_file"):
        path = plan["payload_file"]
        return single_payload_set(Path(path).read_bytes(), content_type, path)
    return single_payload_set(DEFAULT_BODY, content_type)


class StepBoard:
    """The latest step posted to this process; lanes poll it for a step they have not run.

    A worker's board stays closed until the master accepted the worker's handshake: a
    worker sending another body must not run a step, even one broadcast to it."""

    def __init__(self) -> None:
        self.latest: StepOrder | None = None
        self.open = True

    def post(self, data: object) -> None:
        """A step message; one that is not a StepOrder is not run (its lanes stay silent,
        and the master ends the run naming them)."""
        if not self.open:
            return
        try:
            self.latest = unserialize(STEP_MESSAGE, data)
        except WireError as exc:
            log.error("ignoring a malformed step message: %s", exc)

    def wait_newer(self, last_index: int) -> StepOrder:
        while self.latest is None or self.latest["index"] <= last_index:
            gevent.sleep(0.02)
        return self.latest


class LaneSide:
    """What this process's lanes share: the board they take steps from and the recorder
    of their requests. One per Locust environment, made in `events.init`, found by the
    lanes through their environment (`lane_side`)."""

    def __init__(self, environment: Any) -> None:
        self.board = StepBoard()
        self.recorder = Recorder()
        environment.events.request.add_listener(self.recorder.on_request)


def lane_side(environment: Any) -> LaneSide:
    return environment.tuner_lanes


class OpenLoopLane:
    """Mixin for a Locust User: run every posted step as one lane of open-loop arrivals.

    The concrete user provides `invoke(tag)`, which sends one request and fires
    `events.request` with `context={"tuner": tag}` (HTTP clients do so themselves).
    """

    plan: dict[str, Any]
    payloads: PayloadSet
    invoke: Any  # (tag) -> None, provided by the concrete user

    def run_lanes(self) -> None:
        last = -1
        board = lane_side(self.environment).board
        while True:
            step = board.wait_newer(last)
            last = step["index"]
            self.run_step(step)

    def run_step(self, step: StepOrder) -> None:
        plan = {**self.plan, **step.get("settings", {})}
        recorder = lane_side(self.environment).recorder
        rate = step["offered_rps"] / step["lanes"]
        duration = step["duration_s"]
        timeout = plan["request_timeout_s"]
        # Little's law: enough concurrent requests that the rate is never capped by them.
        in_flight = min(plan["max_in_flight"], max(64, math.ceil(rate * timeout * 1.2) + 16))
        pool = Pool(in_flight)
        rng = random.Random()
        # Every lane draws the same payload sequence for a step (seeded by the master).
        picker = PayloadPicker([p.weight for p in self.payloads.payloads],
                               plan.get("payload_seed", 0))
        picker.reset(step["index"])
        poisson = plan.get("arrivals") == "poisson"
        guard = AbortGuard(plan.get("abort"), step["index"], recorder)
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
                    pool.spawn(self.send, (step["index"], t0, intended, picker.next_index()),
                               lags, guard.outstanding)
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
        rejected, rejected_example = recorder.pop_rejected(step["index"])
        names = [p.name for p in self.payloads.payloads]
        self.environment.runner.send_message(DONE_MESSAGE, lane_report(
            step["index"], recorder.pop(step["index"]), timeout, abandoned, cpu_percent,
            lags, unsent, abort_reason, aborted_at,
            {names[index]: count for index, count in rejected.items()}, rejected_example))

    def send(self, tag: tuple[int, float, float, int], lags: list[float],
             outstanding: dict[float, bool]) -> None:
        """Send one request; `tag`: step index, step start, intended offset, payload index."""
        _, t0, intended, _ = tag
        lags.append(time.perf_counter() - t0 - intended)
        outstanding[intended] = True
        try:
            self.invoke(tag)
        except gevent.GreenletExit:
            # Killed unanswered at the step's end: an error like a timeout, reported like
            # any request, so the step's counts and Locust's own cover every request sent.
            self.environment.events.request.fire(
                request_type="POST", name="(abandoned at the step's end)",
                context={"tuner": tag}, response=None, response_length=0,
                exception=RuntimeError("abandoned unanswered at the end of the step"),
                response_time=(time.perf_counter() - t0 - intended) * 1000.0)
            raise
        finally:
            outstanding.pop(intended, None)


def alive_lanes(runner: Any) -> set[str]:
    """The lanes connected now: the local process, or the workers not gone missing."""
    if isinstance(runner, MasterRunner):
        return {node.id for node in list(runner.clients.values())
                if node.state in LIVE_WORKER_STATES}
    return {LOCAL_LANE}


class SearchShape(LoadTestShape):
    """Locust's shape protocol: owns the search controller (on the master or the local
    runner; none on a worker) and posts the steps it starts to every lane."""

    def __init__(self) -> None:
        super().__init__()
        self.controller: SearchController | None = None

    def tick(self) -> tuple[int, float] | None:
        if self.controller is None:
            return None
        decision = self.controller.tick(alive_lanes(self.runner))
        if decision.step is not None:
            self.runner.send_message(STEP_MESSAGE, decision.step)
        return decision.users


def make_controller(environment: Any, plan: dict[str, Any],
                    payloads_sha256: str) -> SearchController:
    """The controller of this run, from the plan and Locust's own options."""
    options = getattr(environment, "parsed_options", None)
    identity = hello(payloads_sha256, socket.gethostname(), os.getpid())
    return SearchController(
        plan, identity, distributed=isinstance(environment.runner, MasterRunner),
        expect_workers=int(getattr(options, "expect_workers", 1) or 1),
        files=RunFiles(Path(plan["output_dir"])))


def install(plan: dict[str, Any], payloads: PayloadSet) -> None:
    """Wire the lanes, the controller and the message handlers into Locust once its
    runner exists. Every message this glue speaks is registered here. `payloads` is what
    this process sends; its hash is what a worker and its master must agree on."""
    payloads_sha256 = payloads.sha256()

    @events.init.add_listener
    def _on_init(environment, **_: Any) -> None:
        runner = environment.runner
        environment.tuner_lanes = lanes = LaneSide(environment)
        controller = None
        if not isinstance(runner, WorkerRunner):
            controller = make_controller(environment, plan, payloads_sha256)
            if isinstance(environment.shape_class, SearchShape):
                environment.shape_class.controller = controller
        supervisor = os.environ.get(SUPERVISOR_ENV)
        if supervisor:
            gevent.spawn(watch_supervisor, environment, controller, int(supervisor))
        if not isinstance(runner, MasterRunner):
            runner.register_message(STEP_MESSAGE,
                                    lambda environment, msg, **_: lanes.board.post(msg.data))
        if controller is None:
            join_master(environment, payloads_sha256)
            return
        runner.register_message(
            DONE_MESSAGE, lambda environment, msg, **_: controller.on_report(msg.node_id,
                                                                             msg.data))
        environment.events.test_stopping.add_listener(
            lambda **_: controller.on_stopping(alive_lanes(runner)))
        environment.events.quitting.add_listener(
            lambda **_: controller.on_quit(alive_lanes(runner)))
        if isinstance(runner, MasterRunner):
            runner.register_message(
                HELLO_MESSAGE, lambda environment, msg, **_: answer_hello(runner, controller,
                                                                          msg))
            atexit.register(lambda: controller.on_exit(alive_lanes(runner)))


def answer_hello(runner: Any, controller: SearchController, msg: Message) -> None:
    """A worker's handshake: welcome it, or refuse it (it exits) and carry on without."""
    problem = controller.admit(msg.node_id, msg.data)
    if problem is None:
        runner.send_message(WELCOME_MESSAGE, Welcome(version=str(controller.identity["version"])),
                            client_id=msg.node_id)
    else:
        runner.send_message(REFUSED_MESSAGE, Refused(error=problem), client_id=msg.node_id)


def join_master(environment, payloads_sha256: str) -> None:
    """The worker's side of the handshake: say who it is and what it sends; run steps only
    once welcomed; on refusal, one line on stderr and exit code 2."""
    runner = environment.runner
    board = lane_side(environment).board
    board.open = False

    def welcomed(environment, msg, **_: Any) -> None:
        try:
            welcome = unserialize(WELCOME_MESSAGE, msg.data)
        except WireError as exc:
            leave(f"the master's welcome was malformed ({exc}): install the same "
                  "endpoint-tuner version on the master and every worker")
            return
        board.open = True
        log.info("accepted by the master (%s)", welcome["version"])

    def refused(environment, msg, **_: Any) -> None:
        try:
            problem = unserialize(REFUSED_MESSAGE, msg.data)["error"]
        except WireError as exc:
            problem = f"(and its refusal was malformed: {exc})"
        leave(f"the master refused this worker: {problem}")

    def leave(problem: str) -> None:
        sys.stderr.write(f"error: {problem}\n")
        sys.stderr.flush()
        environment.process_exit_code = 2
        gevent.spawn(environment.runner.quit)

    def unanswered() -> None:
        gevent.sleep(WELCOME_WAIT_S)
        if not board.open:
            leave(f"the master did not answer this worker's handshake ({wire_version()}) "
                  f"within {WELCOME_WAIT_S:.0f} s: install the same endpoint-tuner version "
                  "on the master and every worker")

    runner.register_message(WELCOME_MESSAGE, welcomed)
    runner.register_message(REFUSED_MESSAGE, refused)
    gevent.spawn(unanswered)
    runner.send_message(HELLO_MESSAGE, hello(payloads_sha256, socket.gethostname(),
                                             os.getpid()))


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


def watch_supervisor(environment, controller: SearchController | None,
                     supervisor_pid: int) -> None:
    """Never outlive the supervisor: Locust runs in its own session, so no terminal signal
    reaches it, and a SIGKILLed tuner cannot stop it. Poll, and once the tuner (or this
    process's parent, or a worker's master) is gone, tell the workers to quit and exit."""
    parent_pid = os.getppid()
    runner = environment.runner
    while not supervisor_gone(supervisor_pid, parent_pid) and not master_silent(runner):
        gevent.sleep(SUPERVISOR_POLL_S)
    log.error("the process supervising this load test (pid %d) or its master is gone: "
              "stopping the load", supervisor_pid)
    if controller is not None:
        controller.supervisor_gone(supervisor_pid)
    if isinstance(runner, MasterRunner):
        with gevent.Timeout(1.0, False):
            for node in list(runner.clients.values()):
                runner.server.send_to_client(Message("quit", None, node.id))
            gevent.sleep(0.2)  # let the quit messages leave
    logging.shutdown()
    os._exit(3)
