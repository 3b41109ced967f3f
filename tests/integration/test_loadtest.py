"""Real Locust, as a subprocess, against the bundled model server of known capacity."""

import json

import pytest

from tuner.config import build_config
from tuner.measure.analysis import estimate_capacity, summarize_samples
from tuner.measure.loadtest import run_load_test, sla_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def measured(server_200, tmp_path_factory):
    config = build_config({}, {"endpoint": "ep", "url": server_200.url, "sla_latency_ms": 100,
                               # doublings at 90, 180, 360: none exactly on the 200 rps
                               # saturation, where a step is a coin flip
                               "start_rps": 45, "max_test_seconds": 30,
                               # deterministic truth for the plumbing (see test_flow.config)
                               "arrivals": "uniform"})
    lines: list[str] = []
    output = run_load_test(config, tmp_path_factory.mktemp("lt"), region="us-east-1",
                           on_progress=lines.append)
    return config, output, lines


def test_finds_known_capacity_within_15_percent(measured, server_200):
    config, output, _ = measured
    steps = summarize_samples(output.specs, output.samples, sla_of(config))
    capacity = estimate_capacity(steps, sla_of(config)).max_sustainable_rps
    assert abs(capacity - server_200.capacity_rps) / server_200.capacity_rps < 0.15


def test_raw_data_is_on_disk_and_reanalysis_matches_the_live_verdicts(measured):
    config, output, _ = measured
    assert (output.directory / "samples.csv").stat().st_size > 0
    # Locust's own statistics see every request the open-loop recorder filed.
    locust_stats = json.loads((output.directory / "locust.json").read_text())
    assert sum(entry["num_requests"] for entry in locust_stats) == len(output.samples)
    live = json.loads((output.directory / "loadtest.json").read_text())["results"]
    again = summarize_samples(output.specs, output.samples, sla_of(config))
    assert [s["verdict"] for s in live] == [s.verdict for s in again]
    assert output.load_seconds <= config.max_test_seconds


def test_steps_hold_their_offered_rate(measured):
    config, output, _ = measured
    steps = summarize_samples(output.specs, output.samples, sla_of(config))
    for step in steps:
        if step.passed:
            assert step.achieved_rps == pytest.approx(step.offered_rps, rel=0.05)


def test_failing_endpoint_is_aborted_and_the_run_still_ends_cleanly(tmp_path):
    from tuner.demo.servers import model_server

    with model_server(slots=4, service_ms=20.0, error_rate=0.5) as broken:
        config = build_config({}, {"endpoint": "ep", "url": broken.url, "sla_latency_ms": 100,
                                   "start_rps": 50, "max_test_seconds": 12})
        output = run_load_test(config, tmp_path, region="us-east-1")
    assert output.summary["complete"]
    first = output.specs[0]
    assert first.abort_reason and "error rate" in first.abort_reason
    assert first.duration_s < 4.0  # cut short, not run to its planned length
    steps = summarize_samples(output.specs, output.samples, sla_of(config))
    assert all(s.verdict == "fail" for s in steps)
    failures = (tmp_path / "locust_failures.csv").read_text()
    assert "HTTP 500" in failures  # status failures reach Locust's statistics by name


def test_progress_reports_every_step_as_it_runs(measured):
    _, output, lines = measured
    started = [line for line in lines if "offering" in line]
    judged = [line for line in lines if "PASS" in line or "FAIL" in line]
    assert len(started) == len(judged) == len(output.specs)
    assert "s of load left" in started[0]
