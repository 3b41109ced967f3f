"""The offline search over many seeds: spread over processes, the same runs as one by one."""

from __future__ import annotations

from tuner.measure.analysis import Sla
from tuner.measure.offline import run_offline, run_offline_seeds
from tuner.measure.queueing import ServiceLaw, VirtualEndpoint
from tuner.measure.search import SearchSettings

LAW, SLOTS = "constant:20", 4
SETTINGS = SearchSettings(start_rps=20.0, percentile=90, budget_s=10.0, sla_latency_ms=100.0)
SLA = Sla(90, 100.0, 0.01, 0.95)


def _summary(run):
    return ([(s.offered_rps, s.requests, s.slow_requests) for s in run.steps], run.load_seconds,
            None if run.capacity is None else run.capacity.max_sustainable_rps)


def test_runs_over_worker_processes_match_the_runs_one_by_one_in_seed_order():
    seeds = [3, 1]
    one_by_one = [_summary(run_offline(VirtualEndpoint(ServiceLaw.parse(LAW), SLOTS, seed=s),
                                       SETTINGS, SLA)) for s in seeds]
    spread = [_summary(run) for run in run_offline_seeds(LAW, SLOTS, SETTINGS, SLA, seeds,
                                                         workers=2)]
    assert spread == one_by_one
    assert len({str(s) for s in spread}) > 1  # the seeds differ: order is checked
