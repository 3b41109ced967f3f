"""Run the Locust capacity search as a subprocess and read back what it measured.

Locust monkey-patches the process with gevent, which hangs Prefect flows and boto3 in the
same process, so it always runs as `python -m locust` in a child process. The two sides
exchange files: `plan.json` in, `samples.csv` + `loadtest.json` (+ Locust's own CSV/JSON
stats and log) out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tuner.config import TuneConfig
from tuner.errors import InputError, RunError
from tuner.measure.analysis import Sla, StepSpec
from tuner.measure.payload_sources import load_payload_set
from tuner.measure.payloads import (
    DEFAULT_BODY,
    DEFAULT_CONTENT_TYPE,
    PAYLOADS_FILE,
    PayloadSet,
    single_payload_set,
)
from tuner.measure.search import SearchSettings
from tuner.status import TargetKind

LOADTESTS_DIR = Path(__file__).resolve().parents[2] / "loadtests"
# Upper bound of concurrent requests per lane for workers (the master's own comes from
# --max-in-flight); connections are opened lazily, Locust raises the open-file limit to 10,000.
MAX_IN_FLIGHT_PER_LANE = 8000
# How long a master waits for its workers to connect.
WORKER_WAIT_SECONDS = 120
# A stopping condition must hold this long before a step is aborted.
ABORT_AFTER_SECONDS = 2.0


@dataclass(frozen=True)
class LoadTestOutput:
    """What a finished load test left in its directory, parsed."""

    directory: Path
    specs: list[StepSpec]
    samples: pd.DataFrame
    summary: dict[str, Any]
    # What the run sent (`payloads.jsonl`); None for a run written before payload sets.
    payload_set: PayloadSet | None = None

    @property
    def load_seconds(self) -> float:
        return float(sum(s.duration_s for s in self.specs))

    @property
    def sla(self) -> Sla:
        return Sla(**self.summary["plan"]["sla"])


def sla_of(config: TuneConfig) -> Sla:
    return Sla(config.sla_percentile, config.sla_latency_ms, config.max_error_rate,
               config.confidence)


def search_settings_of(config: TuneConfig) -> SearchSettings:
    return SearchSettings(
        strategy=config.search, start_rps=config.start_rps,
        linear_step_rps=config.linear_step_rps, max_rps=config.max_rps,
        precision=config.precision, percentile=config.sla_percentile,
        confidence=config.confidence, warmup_s=config.warmup_seconds,
        min_step_s=config.min_step_seconds, max_step_s=config.max_step_seconds,
        budget_s=config.max_test_seconds, max_error_rate=config.max_error_rate,
        sla_latency_ms=config.sla_latency_ms,
    )


def payload_set_for(payload: Path | None, payloads: str | None, payload_sample: int | None,
                    seed: int, content_type: str | None) -> PayloadSet:
    """What the run sends: a payload set (`--payloads`), one body file (`--payload`), or the
    built-in example body; PayloadError (one line) when the set cannot be used."""
    if payloads is not None:
        return load_payload_set(payloads, content_type, payload_sample, seed)
    if payload is not None:
        return single_payload_set(payload.read_bytes(), content_type or DEFAULT_CONTENT_TYPE,
                                  str(payload))
    return single_payload_set(DEFAULT_BODY, content_type or DEFAULT_CONTENT_TYPE)


def config_payload_set(config: TuneConfig) -> PayloadSet:
    return payload_set_for(config.payload, config.payloads, config.payload_sample, config.seed,
                           config.content_type)


def write_payload_set(payload_set: PayloadSet, output_dir: Path) -> Path:
    """The set as the Locust processes read it (every body prepared once), and as a later
    run can send again (`--payloads <run>/locust/payloads.jsonl`, validate's default)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / PAYLOADS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(payload_set.to_jsonl())
    tmp.replace(path)
    return path


def build_plan(config: TuneConfig, output_dir: Path, region: str | None) -> dict[str, Any]:
    """The file the locustfile reads: everything it needs, nothing it must compute."""
    if config.url:
        target = {"kind": TargetKind.URL, "url": config.url}
    else:
        target = {"kind": TargetKind.SAGEMAKER_RUNTIME, "endpoint": config.endpoint,
                  "variant": config.variant, "region": region}
    return {
        "output_dir": str(output_dir),
        "sla": asdict(sla_of(config)),
        "search": asdict(search_settings_of(config)),
        "arrivals": config.arrivals,
        "request_timeout_s": config.effective_request_timeout_seconds,
        "max_in_flight": config.max_in_flight,
        "abort": {"error_rate": config.abort_error_rate,
                  "latency_ms": config.abort_latency_factor * config.sla_latency_ms,
                  "after_s": ABORT_AFTER_SECONDS},
        "payload_file": str(config.payload.resolve()) if config.payload else None,
        "payload_set_file": str((output_dir / PAYLOADS_FILE).resolve()),
        "payload_seed": config.seed,
        "content_type": config.content_type or DEFAULT_CONTENT_TYPE,
        "target": target,
        "worker_wait_s": WORKER_WAIT_SECONDS,
    }


def locustfile_for(url: str | None, runtime_client: str = "signed") -> Path:
    if url:
        return LOADTESTS_DIR / "http_invocations.py"
    if runtime_client == "boto3":
        return LOADTESTS_DIR / "sagemaker_boto3.py"
    return LOADTESTS_DIR / "sagemaker_runtime.py"


def locust_command(config: TuneConfig, output_dir: Path) -> list[str]:
    locustfile = locustfile_for(config.url, config.runtime_client)
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
               "--csv", str(output_dir / "locust"), "--json-file", str(output_dir / "locust"),
               "--exit-code-on-error", "0", "--loglevel", "INFO",
               "--logfile", str(output_dir / "locust.log")]
    if config.url:
        command += ["--host", config.url]
    if config.processes > 1:
        command += ["--processes", str(config.processes)]
    if config.master:
        command += ["--master", "--master-bind-port", str(config.master_port),
                    "--expect-workers", str(config.expect_workers),
                    "--expect-workers-max-wait", str(WORKER_WAIT_SECONDS)]
    return command


def worker_command(locustfile: Path, master_host: str, master_port: int,
                   processes: int) -> list[str]:
    """A Locust worker for `tuner worker`: it takes every step, timeout and abort setting
    from the master; only the target and payload come from its own plan."""
    command = [sys.executable, "-m", "locust", "-f", str(locustfile), "--worker",
               "--master-host", master_host, "--master-port", str(master_port)]
    if processes > 1:
        command += ["--processes", str(processes)]
    return command


def hard_time_limit(config: TuneConfig) -> float:
    """Load seconds plus generous room for drains between steps and process start-up."""
    wait = WORKER_WAIT_SECONDS if config.master else 0
    return 2 * config.max_test_seconds + 4 * config.effective_request_timeout_seconds + 120 + wait


def run_load_test(config: TuneConfig, output_dir: Path, region: str | None,
                  on_progress: Callable[[str], None] | None = None,
                  payload_set: PayloadSet | None = None) -> LoadTestOutput:
    """Run the search against the endpoint; raise RunError if it produced no usable data.

    While Locust runs, each step line its controller logs (step started with the rate and
    budget left; step judged with achieved rate, latency and verdict) is passed to
    `on_progress` as it appears. `payload_set`: what to send, when the caller read it
    already (the flows read it once, before anything is touched); else read here.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    if payload_set is None:
        payload_set = config_payload_set(config)
    write_payload_set(payload_set, output_dir)
    plan_path = output_dir / "plan.json"
    plan_path.write_text(json.dumps(build_plan(config, output_dir, region), indent=2))
    # Locust runs in its own session (no terminal signal reaches it): it watches this
    # process and stops within a second once it is gone, however it died.
    env = {**os.environ, "TUNER_PLAN": str(plan_path), "PYTHONUNBUFFERED": "1",
           "TUNER_SUPERVISOR_PID": str(os.getpid())}
    command = locust_command(config, output_dir)
    tail = LogTail(output_dir / "locust.log", on_progress)
    deadline = time.monotonic() + hard_time_limit(config)
    with (output_dir / "locust.stdout").open("w") as stdout:
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise RunError(f"the load test did not finish within "
                                   f"{hard_time_limit(config):.0f} s: see "
                                   f"{output_dir / 'locust.log'}")
                time.sleep(0.5)
                tail.poll()
            tail.poll()
        except BaseException:
            stop_process_group(process)
            raise
    return read_load_test(output_dir)


# How long Locust gets to stop on SIGTERM before it is killed: an interrupted run must end
# within seconds.
STOP_GRACE_S = 5.0


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM Locust's process group, SIGKILL it if it has not gone after STOP_GRACE_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


class LogTail:
    """Follows the Locust log and hands on the search controller's step lines."""

    MARKER = "tuner.openloop: "

    def __init__(self, path: Path, on_line: Callable[[str], None] | None) -> None:
        self.path, self.on_line, self.offset = path, on_line, 0

    def poll(self) -> None:
        if self.on_line is None or not self.path.exists():
            return
        with self.path.open("r", errors="replace") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk[:chunk.rfind("\n") + 1]
        self.offset += len(complete.encode(errors="replace"))
        for line in complete.splitlines():
            if self.MARKER in line:
                self.on_line(line.split(self.MARKER, 1)[1])


def read_load_test(output_dir: Path) -> LoadTestOutput:
    """Parse a load test directory (also used to re-analyse old runs)."""
    summary_path = output_dir / "loadtest.json"
    if not summary_path.exists():
        tail = _tail(output_dir / "locust.log") or _tail(output_dir / "locust.stdout")
        raise RunError(f"the load test wrote no results ({tail or 'no log'}): see {output_dir}")
    summary = json.loads(summary_path.read_text())
    specs = [StepSpec(**s) for s in summary["steps"]]
    samples = pd.read_csv(output_dir / "samples.csv")
    samples["ok"] = samples["ok"].astype(bool)
    return LoadTestOutput(output_dir, specs, samples, summary, read_payload_set(output_dir))


def read_payload_set(output_dir: Path) -> PayloadSet | None:
    """The run's payload set as it wrote it (PayloadError, one line, if corrupt)."""
    path = output_dir / PAYLOADS_FILE
    if not path.is_file():
        return None
    return PayloadSet.from_jsonl(path.read_bytes())


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errors or lines or [""])[-1][:300]


def worker_plan(url: str | None, endpoint: str | None, variant: str, region: str | None,
                payload_set_file: Path) -> dict[str, Any]:
    """What a remote worker needs itself: the target and its payload set (written by
    `write_payload_set`; the master checks its hash at the handshake). The rest (rates,
    timeouts, abort thresholds, SLA, the payload seed) comes from the master with each
    step."""
    if (url is None) == (endpoint is None):
        raise InputError("give exactly one of --url or --endpoint, the same as the master's")
    if url is not None:
        target: dict[str, Any] = {"kind": TargetKind.URL, "url": url}
    else:
        if region is None:
            raise InputError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
        target = {"kind": TargetKind.SAGEMAKER_RUNTIME, "endpoint": endpoint, "variant": variant,
                  "region": region}
    return {"output_dir": "worker-output", "target": target,
            "payload_set_file": str(payload_set_file.resolve()),
            "max_in_flight": MAX_IN_FLIGHT_PER_LANE,
            "request_timeout_s": 10.0, "arrivals": "poisson",
            "sla": {"percentile": 90, "latency_ms": 1000, "max_error_rate": 0.01},
            "search": {}}
