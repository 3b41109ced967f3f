"""How often *any* estimate read off slow-request counts can meet issue F's point goal, per case.

An oracle for each zoo case: it knows the exact shape of the true slow-share curve p(rate)
(the share of requests slower than the SLA under Poisson arrivals) and only not where it
sits along the rate axis, and it spends the case's whole load budget at the one rate where
that helps most: no ramp, no warm-up, no pass to show. Reading the share s measured over
the budget, its estimate of the capacity is within the goal (-10%..+3% of the truth C)
exactly when s lies between p(r - 0.03 C) and p(r + 0.10 C) for the rate r it measured at.
The chance of that, over many budget-long windows of the true queue (their slow requests
as clustered as the queue makes them), is an upper bound on what the search can reach on
that case with the budget: the search must also find the rates, ramp, settle the queue and
show a pass. Where it is well under 1, no count-based search meets the goal every run.

The queue is `truth.py`'s independent simulation (nothing shared with the tool's code but
the `ServiceLaw` sampler).

    .venv/bin/python benchmarks/oracle_bound.py
    .venv/bin/python benchmarks/oracle_bound.py --cases lowrate-p99,slow-model --windows 400
    .venv/bin/python benchmarks/oracle_bound.py --cases lowrate-p99 --budget-factor 4
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import HIGH_ERROR, LOW_ERROR, Case, case_truth, select  # noqa: E402
from truth import sojourn_times_s  # noqa: E402

from tuner.measure.queueing import ServiceLaw  # noqa: E402

# Where the oracle may measure, as shares of the true capacity.
DESIGN_RATES = (0.85, 0.90, 0.95, 1.00)
# Simulated requests per design rate at most (windows are fewer where rates are high).
MAX_REQUESTS = 2_000_000
MIN_WINDOWS = 20
SHARE_REQUESTS = 400_000  # per point of the true curve


def _slow(law: ServiceLaw, slots: int, rate: float, requests: int, sla_ms: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(arrival times, slower than the SLA) of a stationary run, its filling tenth dropped."""
    warm = requests // 10
    arrivals = np.cumsum(rng.exponential(1.0 / rate, requests + warm))
    services = law.sample_s(rng, requests + warm)
    sojourn = np.asarray(sojourn_times_s(arrivals.tolist(), services.tolist(), slots))
    return arrivals[warm:] - arrivals[warm], sojourn[warm:] * 1000.0 > sla_ms


def _share(law: ServiceLaw, slots: int, rate: float, sla_ms: float, seed: int) -> float:
    if rate >= law.saturation_rps(slots):
        return 1.0
    _, slow = _slow(law, slots, rate, SHARE_REQUESTS, sla_ms, np.random.default_rng(seed))
    return float(slow.mean())


def study(case: Case, windows: int, seed: int, budget_factor: float = 1.0) -> str:
    truth = case_truth(case).poisson_rps
    budget_s = case.budget_s * budget_factor
    law = ServiceLaw.parse(case.truth_law)
    rng = np.random.default_rng(seed)
    best = (0.0, 0.0, 0.0, 0)
    for share_of_truth in DESIGN_RATES:
        rate = share_of_truth * truth
        per_window = rate * budget_s
        count = int(max(MIN_WINDOWS, min(windows, MAX_REQUESTS // per_window)))
        arrivals, slow = _slow(law, case.slots, rate, int(per_window * count * 1.02) + 100,
                               case.sla_ms, rng)
        window = np.minimum((arrivals // budget_s).astype(int), count)
        kept = window < count
        totals = np.bincount(window[kept], minlength=count)
        slows = np.bincount(window[kept], weights=slow[kept], minlength=count)
        shares = slows / np.maximum(totals, 1)
        # The oracle's estimate lands in the goal exactly for shares in [too_high, too_low].
        too_high = _share(law, case.slots, rate - HIGH_ERROR * truth, case.sla_ms, seed + 1)
        too_low = _share(law, case.slots, rate - LOW_ERROR * truth, case.sla_ms, seed + 2)
        hits = float(np.mean((shares >= too_high) & (shares <= too_low)))
        at_rate = slow.mean()
        # Independent requests per window: the binomial variance over the measured one.
        independent = (at_rate * (1 - at_rate) / shares.var(ddof=1)
                       if shares.var(ddof=1) > 0 else float("inf"))
        if hits >= best[0]:
            best = (hits, share_of_truth, independent, count)
    hits, share_of_truth, independent, count = best
    return (f"{case.name:<18} {case.sla:<15} {budget_s:>5.0f} {truth:8.1f} | "
            f"{share_of_truth:>5.2f} {independent:>12.0f} {count:>7} {100 * hits:>7.0f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: the whole zoo)")
    parser.add_argument("--windows", type=int, default=300,
                        help="budget-long windows per design rate (fewer where rates are high)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--budget-factor", type=float, default=1.0,
                        help="the oracle's load seconds as a multiple of the case's budget")
    args = parser.parse_args()
    if args.budget_factor <= 0:
        raise SystemExit("--budget-factor must be positive")
    if args.windows < MIN_WINDOWS:
        raise SystemExit(f"--windows must be at least {MIN_WINDOWS}")
    cases = select(args.cases)
    print(f"{'case':<18} {'SLA':<15} {'load':>5} {'truth':>8} | {'at':>5} "
          f"{'independent':>12} {'windows':>7} {'oracle':>8}")
    print(f"{'':<18} {'':<15} {'s':>5} {'rps':>8} | {'xC':>5} {'requests':>12} "
          f"{'':>7} {'in goal':>8}")
    with ProcessPoolExecutor() as pool:
        for line in pool.map(study, cases, [args.windows] * len(cases),
                             [args.seed] * len(cases), [args.budget_factor] * len(cases)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
