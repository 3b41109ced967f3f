"""How often the search meets issue F's goals on each zoo case, over many seeds, in minutes.

`accuracy.py` measures one run per case against a real model server (40 minutes for the
zoo): the figures a user would see, but one draw each. This runs the same search and
analysis (`tuner.measure.offline`) against `tuner.measure.queueing.VirtualEndpoint`, the same queue
simulated in virtual time, for `--seeds` runs per case, and prints per case how the point
estimates spread, how often a run met the point goal (-10%..+3% of the truth), how often
the target's basis (the interval's lower end) was above the truth, and how many runs
ended with no pass within their budget. The truth is `accuracy.py`'s: the independent
discrete-event simulation in `benchmarks/truth.py`.

    .venv/bin/python benchmarks/offline_zoo.py --seeds 6
    .venv/bin/python benchmarks/offline_zoo.py --seeds 20 --cases slow-model,lowrate-p99
    .venv/bin/python benchmarks/offline_zoo.py --seeds 100 --cases mix-1x8 --budget-s 45 \
        --start-rps 10
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import HIGH_ERROR, LOW_ERROR, Case, blind_start, case_truth, select  # noqa: E402
from truth import Truth  # noqa: E402

from tuner.config import TUNE_LIMITS  # noqa: E402
from tuner.measure.analysis import Sla  # noqa: E402
from tuner.measure.offline import run_offline_seeds  # noqa: E402
from tuner.measure.search import SearchSettings  # noqa: E402

# The tuner's own least --max-test-seconds.
MIN_BUDGET_S = TUNE_LIMITS["max_test_seconds"][0].low
COLUMNS = (f"{'case':<18} {'truth':>7} | {'median':>7} {'min':>7} {'max':>7} "
           f"{'in goal':>7} {'basis>truth':>11} {'no pass':>7} {'load s':>6}")


def study(case: Case, truth: Truth, seeds: int, start_rps: float | None = None) -> str:
    truth_rps = truth.poisson_rps
    sla = Sla(case.percentile, case.sla_ms, 0.01, 0.95)
    settings = SearchSettings(start_rps=start_rps or blind_start(truth),
                              percentile=case.percentile,
                              budget_s=case.budget_s, sla_latency_ms=case.sla_ms)
    errors, above, no_pass, loads = [], 0, 0, []
    for run in run_offline_seeds(case.truth_law, case.slots, settings, sla, range(seeds)):
        loads.append(run.load_seconds)
        if run.capacity is None:
            no_pass += 1
            continue
        errors.append(run.capacity.max_sustainable_rps / truth_rps - 1)
        above += run.capacity.last_pass_rps > truth_rps
    met = sum(LOW_ERROR <= e <= HIGH_ERROR for e in errors)
    spread = (f"{100 * np.median(errors):+6.1f}% {100 * min(errors):+6.1f}% "
              f"{100 * max(errors):+6.1f}%" if errors else f"{'n/a':>7} {'n/a':>7} {'n/a':>7}")
    return (f"{case.name:<18} {truth_rps:7.1f} | {spread} {met:>3}/{seeds:<3} "
            f"{above:>7}/{len(errors):<3} {no_pass:>3}/{seeds:<3} {np.median(loads):6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: the whole zoo)")
    parser.add_argument("--seeds", type=int, default=6, help="runs per case (seeds 0..N-1)")
    parser.add_argument("--budget-s", type=float,
                        help="every case's load budget in seconds (default: the case's own); "
                             "how a test with a shorter budget spreads")
    parser.add_argument("--start-rps", type=float,
                        help="every run's first rate (default: a twentieth of the truth, "
                             "rounded, as a user who knows its order of magnitude)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.budget_s is not None and not (math.isfinite(args.budget_s)
                                          and args.budget_s >= MIN_BUDGET_S):
        parser.error(f"--budget-s must be a number of seconds >= {MIN_BUDGET_S:g} "
                     "(the tuner's own least --max-test-seconds)")
    if args.start_rps is not None and not (math.isfinite(args.start_rps)
                                           and args.start_rps > 0):
        parser.error("--start-rps must be a positive rate")
    cases = select(args.cases)
    if args.budget_s is not None:
        cases = [replace(case, budget_s=args.budget_s) for case in cases]
    print(COLUMNS)
    print("-" * len(COLUMNS))
    for case in cases:
        print(study(case, case_truth(case), args.seeds, args.start_rps), flush=True)


if __name__ == "__main__":
    main()
