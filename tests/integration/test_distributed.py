"""Locust's own distributed mode: a master and two `tuner worker`s on loopback; and its
integrity: lost workers, refused workers, a killed supervisor."""

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import psutil
import pytest

from tuner.config import build_config
from tuner.demo.servers import free_port, model_server
from tuner.measure import loadtest
from tuner.measure.analyse import analyse_output
from tuner.measure.analysis import estimate_capacity, summarize_samples
from tuner.measure.loadtest import run_load_test, sla_of
from tuner.measure.payloads import DEFAULT_BODY, single_payload_set

pytestmark = pytest.mark.integration


def test_master_and_two_workers_measure_capacity_like_one_process(tmp_path):
    with model_server(slots=8, service_ms=20.0) as server:  # 400 rps
        port = free_port()
        workers = [subprocess.Popen(
            [sys.executable, "-m", "tuner.cli", "worker", "--master-host", "127.0.0.1",
             "--master-port", str(port), "--url", server.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            config = build_config({}, {
                "endpoint": "ep", "url": server.url, "sla_latency_ms": 100, "start_rps": 90,
                # doublings at 180, 360, 720: none on the 400 rps saturation (a coin flip)
                "max_test_seconds": 30, "master": True, "expect_workers": 2, "arrivals": "uniform",
                "master_port": port})
            output = run_load_test(config, tmp_path, region=None)
        finally:
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
    assert all(m["lanes_expected"] == 2 == m["lanes_reported"]
               for m in output.summary["step_meta"])
    steps = summarize_samples(output.specs, output.samples, sla_of(config))
    capacity = estimate_capacity(steps, sla_of(config)).max_sustainable_rps
    assert abs(capacity - server.capacity_rps) / server.capacity_rps < 0.15
    passed = [s for s in steps if s.passed]
    assert passed and all(abs(s.achieved_rps - s.offered_rps) / s.offered_rps < 0.05
                          for s in passed)


def locust_processes() -> list[psutil.Process]:
    """This test's Locust processes: the master (a child) and its forked workers."""
    masters = [p for p in psutil.Process().children()
               if "locust" in " ".join(p.cmdline())]
    return masters + [w for m in masters for w in m.children()]


def test_a_worker_lost_mid_step_ends_the_run_naming_it_and_the_step_is_not_judged(tmp_path):
    killed: list[int] = []

    def kill_a_worker(line: str) -> None:
        if "offering" in line and not killed:
            worker = locust_processes()[-1]
            killed.append(worker.pid)
            worker.send_signal(signal.SIGKILL)

    with model_server(slots=8, service_ms=20.0) as server:
        config = build_config({}, {
            "endpoint": "ep", "url": server.url, "sla_latency_ms": 100, "start_rps": 50,
            "max_test_seconds": 20, "processes": 2, "arrivals": "uniform"})
        started = time.monotonic()
        output = run_load_test(config, tmp_path, region=None, on_progress=kill_a_worker)
    assert killed and time.monotonic() - started < 30  # ended at the loss, not the budget
    reason = output.summary["stop_reason"]
    assert f"pid {killed[0]}" in reason and "lost during step 0" in reason
    lost = output.specs[-1]
    assert lost.index == 0 and lost.invalid_reason and f"pid {killed[0]}" in lost.invalid_reason
    assert output.summary["results"] == []  # never judged live ...
    assert summarize_samples(output.specs, output.samples, sla_of(config)) == []  # ... nor later
    analysis = analyse_output(config, output, instances_under_test=1)
    assert analysis.capacity is None and f"pid {killed[0]}" in analysis.error


def test_a_worker_sending_another_body_is_refused_with_one_line(tmp_path, monkeypatch):
    # Refused before the test started, the master waits for a good worker for this long;
    # refused after, it ends at once (Locust's master ends when its last worker quits).
    monkeypatch.setattr(loadtest, "WORKER_WAIT_SECONDS", 8)
    body = tmp_path / "other.json"
    body.write_text('{"instances": [[9, 9]]}')
    with model_server(slots=4, service_ms=20.0) as server:
        port = free_port()
        config = build_config({}, {
            "endpoint": "ep", "url": server.url, "sla_latency_ms": 100, "start_rps": 20,
            "max_test_seconds": 10, "master": True, "expect_workers": 1, "master_port": port})
        outputs: list = []
        master = threading.Thread(target=lambda: outputs.append(
            run_load_test(config, tmp_path / "run", region=None)))
        master.start()
        try:
            worker = subprocess.run(
                [sys.executable, "-m", "tuner.cli", "worker", "--master-host", "127.0.0.1",
                 "--master-port", str(port), "--url", server.url, "--payload", str(body)],
                capture_output=True, text=True, timeout=60)
        finally:
            master.join(timeout=60)
    errors = [line for line in worker.stderr.splitlines() if line.startswith("error:")]
    ours = single_payload_set(DEFAULT_BODY, "application/json").sha256()
    theirs = single_payload_set(body.read_bytes(), "application/json", str(body)).sha256()
    assert worker.returncode == 2 and len(errors) == 1, worker.stderr
    assert ours[:12] in errors[0] and theirs[:12] in errors[0] and "--payload" in errors[0]
    # The master measured nothing with it, and says why it ended.
    summary = outputs[0].summary
    assert summary["steps"] == [] and "refused worker" in summary["stop_reason"]
    assert theirs[:12] in summary["refused_workers"][0]
    analysis = analyse_output(config, outputs[0], instances_under_test=1)
    assert analysis.error.startswith("no load was measured") and theirs[:12] in analysis.error


SUPERVISOR = """
import json, sys
from pathlib import Path
from tuner.config import build_config
from tuner.measure.loadtest import run_load_test
run_load_test(build_config({}, json.loads(sys.argv[1])), Path(sys.argv[2]), region=None)
"""


def served(url: str) -> int:
    with urllib.request.urlopen(url + "/ping", timeout=2) as response:
        return json.load(response)["requests"]


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_load_stops_within_seconds_when_the_tuner_process_is_killed(tmp_path):
    with model_server(slots=8, service_ms=20.0) as server:
        settings = {"endpoint": "ep", "url": server.url, "sla_latency_ms": 100,
                    "start_rps": 100, "max_test_seconds": 60, "processes": 2}
        tuner = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(settings),
                                  str(tmp_path)])
        locust: list[psutil.Process] = []
        try:
            deadline = time.monotonic() + 30
            log = tmp_path / "locust.log"
            while not (log.exists() and "offering" in log.read_text()):
                assert time.monotonic() < deadline and tuner.poll() is None
                time.sleep(0.2)
            locust = [p for p in psutil.Process(tuner.pid).children(recursive=True)]
            assert len(locust) == 3  # master and two workers
            before = served(server.url)
            time.sleep(1.0)
            assert served(server.url) > before  # load is flowing
            tuner.kill()
            tuner.wait()
            killed_at = time.monotonic()
            while not all(gone(p) for p in locust):
                assert time.monotonic() - killed_at < 3.0, "Locust outlived the tuner"
                time.sleep(0.1)
            time.sleep(max(0.0, killed_at + 3.0 - time.monotonic()))
            settled = served(server.url)
            time.sleep(1.0)
            assert served(server.url) == settled  # the endpoint gets no more requests
        finally:
            for process in locust:
                if not gone(process):
                    process.kill()
