"""The whole capacity search run offline against a simulated endpoint, in virtual time.

The same `search.next_step`, `analysis.summarize_step` and `analysis.estimate_capacity`
the Locust controller uses, with `queueing.VirtualEndpoint` answering the requests: a run
of minutes of load takes milliseconds, so the simulation tests can check what the tool's
statistical claims (pass, fail, interval) are worth over thousands of runs, on servers
whose true capacity `queueing.capacity_at_sla` knows.

Between steps it pauses as the controller does: lanes wait for their outstanding answers
(up to the request timeout), and after abandoned requests the search waits for the
endpoint to drain (`search.drain_seconds`).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from tuner.errors import NoPassingStepError
from tuner.measure.analysis import (
    CapacityEstimate,
    Sla,
    StepResult,
    StepSpec,
    estimate_capacity,
    summarize_step,
)
from tuner.measure.queueing import ServiceLaw, VirtualEndpoint
from tuner.measure.search import SearchSettings, budget_advice, drain_seconds, next_step

__all__ = ["OfflineRun", "run_offline", "run_offline_seeds"]


@dataclass(frozen=True)
class OfflineRun:
    specs: list[StepSpec]
    steps: list[StepResult]
    load_seconds: float
    capacity: CapacityEstimate | None
    advice: str | None  # set when the budget did not resolve the capacity


def run_offline(endpoint: VirtualEndpoint, settings: SearchSettings, sla: Sla) -> OfflineRun:
    """Run the search to its end against `endpoint`."""
    specs: list[StepSpec] = []
    steps: list[StepResult] = []
    used = 0.0
    pause = 0.0
    while (spec := next_step(steps, settings, used)) is not None:
        spec = replace(spec, timeout_s=endpoint.timeout_s)
        samples = endpoint.run_step(spec.offered_rps, spec.duration_s, pause)
        result = summarize_step(spec, samples["intended_s"], samples["completed_s"],
                                samples["latency_ms"], samples["ok"], sla)
        specs.append(spec)
        steps.append(result)
        used += spec.duration_s
        # Lanes wait for their last answers (at most the timeout); abandoned requests are
        # still queued at the endpoint, which the search lets drain.
        waited = min(endpoint.backlog_s(), endpoint.timeout_s)
        abandoned = int((~samples["ok"]).sum())
        pause = waited + drain_seconds(abandoned, result.achieved_rps)
    try:
        capacity = estimate_capacity(steps, sla)
    except NoPassingStepError:
        capacity = None
    return OfflineRun(specs, steps, used, capacity, budget_advice(steps, settings, used))


def run_offline_seeds(law: str, slots: int, settings: SearchSettings, sla: Sla,
                      seeds: Iterable[int], workers: int | None = None) -> list[OfflineRun]:
    """`run_offline` against `VirtualEndpoint(law, slots, seed)` for each seed, in seed
    order, spread over the machine's cores (`workers`, default all of them): a study of
    40 runs is CPU-bound Python, and each run is independent of the others.

    Worker processes are started fresh (`spawn`: no fork of a process that may hold
    threads), so results are the same as running the seeds one by one."""
    seeds = list(seeds)
    workers = workers or len(os.sched_getaffinity(0))
    if workers <= 1 or len(seeds) <= 1:
        return [_seed_run(law, slots, settings, sla, seed) for seed in seeds]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(seeds)), mp_context=context) as pool:
        return list(pool.map(functools.partial(_seed_run, law, slots, settings, sla), seeds))


def _seed_run(law: str, slots: int, settings: SearchSettings, sla: Sla,
              seed: int) -> OfflineRun:
    return run_offline(VirtualEndpoint(ServiceLaw.parse(law), slots, seed=seed), settings, sla)
