"""Locust's own distributed mode: a master and two `tuner worker`s on loopback."""

import subprocess
import sys

from tuner.analysis import estimate_capacity, summarize_samples
from tuner.config import build_config
from tuner.loadtest import run_load_test, sla_of
from tuner.servers import free_port, model_server


def test_master_and_two_workers_measure_capacity_like_one_process(tmp_path):
    with model_server(slots=8, service_ms=20.0) as server:  # 400 rps
        port = free_port()
        workers = [subprocess.Popen(
            [sys.executable, "-m", "tuner.cli", "worker", "--master-host", "127.0.0.1",
             "--master-port", str(port), "--url", server.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            config = build_config({}, {
                "endpoint": "ep", "url": server.url, "sla_latency_ms": 100, "start_rps": 50,
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
