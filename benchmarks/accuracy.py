"""Accuracy and speed of the capacity search against servers of known capacity.

Runs the adaptive open-loop search and, as the baseline, Inference-Recommender-style linear
stairs (fixed increments until the first failing step) against the bundled model server in
several configurations, and prints per configuration: true capacity, measured capacity,
error %, load seconds, and the ratio of load seconds to the baseline's.

    .venv/bin/python benchmarks/accuracy.py [--quick] [--seed N]

Goal (issue B): within 3% of the truth (10% at worst) in at most 120 s of load.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tuner.analysis import estimate_capacity, summarize_samples  # noqa: E402
from tuner.config import build_config  # noqa: E402
from tuner.errors import NoPassingStepError  # noqa: E402
from tuner.loadtest import run_load_test, sla_of  # noqa: E402
from tuner.servers import model_server  # noqa: E402

# (slots, service_ms, SLA p90 ms): the second has high per-request latency and many slots,
# which closed-loop ramps with few users under-measure.
CONFIGS = [(4, 20.0, 100.0), (32, 200.0, 500.0), (8, 10.0, 50.0)]


def measure(url: str, sla_ms: float, strategy: str, budget: float, start: float,
            workdir: Path) -> tuple[float | None, tuple, float]:
    flags = {"endpoint": "bench", "url": url, "sla_latency_ms": sla_ms, "start_rps": start,
             "max_test_seconds": budget, "search": strategy}
    if strategy == "linear":
        flags["linear_step_rps"] = start
    config = build_config({}, flags)
    output = run_load_test(config, workdir, region=None)
    steps = summarize_samples(output.specs, output.samples, sla_of(config))
    try:
        capacity = estimate_capacity(steps, sla_of(config))
    except NoPassingStepError:
        return None, (None, None), output.load_seconds
    return capacity.max_sustainable_rps, capacity.ci, output.load_seconds


def error_pct(value: float | None, truth: float) -> str:
    return "n/a" if value is None else f"{100 * (value - truth) / truth:+.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first configuration only")
    parser.add_argument("--seed", type=int, default=None,
                        help="also test one random held-out configuration")
    parser.add_argument("--baseline-budget", type=float, default=300.0)
    args = parser.parse_args()
    configs = CONFIGS[:1] if args.quick else list(CONFIGS)
    if args.seed is not None:
        rng = random.Random(args.seed)
        service = rng.choice([5.0, 15.0, 40.0, 120.0])
        configs.append((rng.randint(2, 24), service, service * rng.choice([2.0, 3.0, 5.0])))

    header = (f"{'server':>22} {'true':>7} | {'adaptive':>8} {'err%':>6} {'CI':>15} {'load s':>6}"
              f" | {'stairs':>8} {'err%':>6} {'load s':>6} | {'load ratio':>10}")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for slots, service_ms, sla_ms in configs:
        with model_server(slots, service_ms) as server, tempfile.TemporaryDirectory() as tmp:
            truth = server.capacity_rps
            start = max(1.0, round(truth / 20))  # the same blind start for both searches
            adaptive, ci, adaptive_s = measure(server.url, sla_ms, "adaptive", 120.0, start,
                                               Path(tmp) / "adaptive")
            stairs, _, stairs_s = measure(server.url, sla_ms, "linear", args.baseline_budget,
                                          start, Path(tmp) / "linear")

        worst = max(worst, abs((adaptive or 0) - truth) / truth)
        ci_text = "n/a" if ci[0] is None else f"{ci[0]:.0f}-{ci[1]:.0f}" if ci[1] else "open"
        name = f"{slots}x{service_ms:g}ms p90<={sla_ms:g}"
        print(f"{name:>22} {truth:7.1f} | {adaptive or 0:8.1f} {error_pct(adaptive, truth):>6} "
              f"{ci_text:>15} {adaptive_s:6.1f} | {stairs or 0:8.1f} {error_pct(stairs, truth):>6} "
              f"{stairs_s:6.1f} | {adaptive_s / stairs_s if stairs_s else 0:10.2f}")
    print(f"\nworst adaptive error: {100 * worst:.1f}% (goal <= 3%, 10% at worst; "
          "<= 120 s of load each)")


if __name__ == "__main__":
    main()
