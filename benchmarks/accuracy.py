"""Accuracy and speed of the capacity search against a zoo of realistic servers.

Each case is the bundled model server with a service-time law (hard knees, long tails,
"5% slow at any load", exponential, a slow 1.5 s model), a number of slots and a latency
SLA (p50, p90 or p99). Its truth is the highest mean Poisson arrival rate meeting the SLA,
computed by an independent discrete-event simulation (benchmarks/truth.py); the rate under
evenly spaced arrivals is shown beside it. The tool's search runs against the real server
exactly as `tuner tune` does, and one row per case shows the measured point, its error
against the Poisson truth, the confidence interval, whether its low end (the basis of the
target) is at or below the truth, and the load and wall seconds.

    .venv/bin/python benchmarks/accuracy.py [--list] [--cases NAME,...] [--seed N] [--stairs]

Goals: the point within -10%..+3% of the Poisson truth, the CI's low end <= the truth, at
most 150 s of load for p50/p90 SLAs and 240 s for p99.

Two cases measure with a payload set (`--payloads`) against the server serving per row
(`--per-row`): `mix-1x8` sends 80% one-row and 20% eight-row requests, `mix-smallest` only
the one-row request to the same server. Their truths are the law scaled by the rows sent
(`constant:10@rows=1:0.8,8:0.2`); side by side they show what measuring with one small body
would have claimed.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from truth import Truth, truths  # noqa: E402

from tuner.config import build_config  # noqa: E402
from tuner.demo.servers import model_server  # noqa: E402
from tuner.errors import RunError  # noqa: E402
from tuner.measure.analyse import analyse_output  # noqa: E402
from tuner.measure.analysis import NO_PASSING_STEP  # noqa: E402
from tuner.measure.loadtest import run_load_test  # noqa: E402

# Goals: point error against the Poisson truth, and the load budget per SLA percentile.
LOW_ERROR, HIGH_ERROR = -0.10, 0.03
P99_BUDGET_S, OTHER_BUDGET_S = 240.0, 150.0


@dataclass(frozen=True)
class Case:
    name: str
    law: str  # a ServiceLaw, as `tuner.demo.model_server --service-law` takes it
    slots: int
    percentile: float
    sla_ms: float
    budget_s: float  # max_test_seconds given to the search
    why: str
    # A payload set as (rows per request, weight): the server serves `law` per row and the
    # search sends these bodies (`--payloads`); empty: the default body, served by `law`.
    rows_mix: tuple[tuple[int, float], ...] = ()

    @property
    def truth_law(self) -> str:
        """The service-time law a request sees: `law`, scaled by the rows of the mix."""
        if not self.rows_mix:
            return self.law
        total = sum(weight for _, weight in self.rows_mix)
        return self.law + "@rows=" + ",".join(f"{rows}:{weight / total:g}"
                                              for rows, weight in self.rows_mix)

    def write_payloads(self, directory: Path) -> Path | None:
        """The case's payload set as `--payloads` JSON Lines (None: no set)."""
        if not self.rows_mix:
            return None
        path = directory / f"{self.name}-payloads.jsonl"
        path.write_text("".join(
            json.dumps({"body": json.dumps({"instances": [[0.1, 0.2, 0.3, 0.4]] * rows}),
                        "content_type": "application/json", "weight": weight}) + "\n"
            for rows, weight in self.rows_mix))
        return path

    @property
    def sla(self) -> str:
        return f"p{self.percentile:g}<={self.sla_ms:g}ms"

    @property
    def truth_requests(self) -> int:
        """Simulated requests per rate: a p99 needs more to be stable (heavier tails)."""
        return 400_000 if self.percentile >= 99 else 200_000


def _case(name: str, law: str, slots: int, percentile: float, sla_ms: float,
          why: str, rows_mix: tuple[tuple[int, float], ...] = ()) -> Case:
    budget = P99_BUDGET_S if percentile >= 99 else OTHER_BUDGET_S
    return Case(name, law, slots, percentile, sla_ms, budget, why, rows_mix)


ZOO = [
    _case("knee-4x20", "constant:20", 4, 90, 100, "hard knee (the old benchmark)"),
    _case("knee-32x200", "constant:200", 32, 90, 500,
          "hard knee, slow requests and many slots: closed-loop ramps under-measure it"),
    _case("knee-8x10", "constant:10", 8, 90, 50, "hard knee at a high rate"),
    _case("longtail-4x40", "lognormal:40:1.0", 4, 90, 150,
          "lognormal long tail: the SLA binds at 3/4 of saturation"),
    _case("bimodal-5pct-slow", "bimodal:20:0.05:400", 4, 90, 100,
          "5% of requests take 400 ms at any load: p90 binds near 58% of saturation"),
    _case("exp-p50", "exponential:25", 4, 50, 40, "exponential service, median SLA"),
    _case("mm1-p50", "exponential:20", 1, 50, 50,
          "one slot (M/M/1): median sojourn ln2/(mu-lambda), truth 36.1 rps"),
    _case("tight-8x20", "lognormal:20:0.5", 8, 90, 40,
          "SLA only 2x the mean: binds at 80% of saturation"),
    _case("slow-model", "lognormal:1500:0.3", 48, 90, 2200,
          "1.5 s model, 48 slots: tens of rps, 2-3 s latencies"),
    _case("exp-p99-8x10", "exponential:10", 8, 99, 60, "p99 at a high rate"),
    _case("longtail-p99", "lognormal:30:1.0", 8, 99, 250, "p99 over a long tail"),
    _case("lowrate-p99", "lognormal:50:0.6", 2, 99, 300,
          "p99 at under 30 rps: few samples per step for the verdict"),
    _case("mix-1x8", "constant:10", 2, 90, 200,
          "payload set: 80% one-row, 20% eight-row requests, served per row",
          rows_mix=((1, 4.0), (8, 1.0))),
    _case("mix-smallest", "constant:10", 2, 90, 200,
          "the same server sent only mix-1x8's one-row request", rows_mix=((1, 1.0),)),
]


@dataclass(frozen=True)
class Measured:
    point_rps: float | None  # None: no step met the SLA
    ci_low_rps: float | None
    ci_high_rps: float | None  # None: open (no failing load reached)
    load_s: float
    error: str | None = None  # the run failed: why


def measure_case(url: str, case: Case, start_rps: float, workdir: Path, *,
                 search: str = "adaptive", budget_s: float | None = None,
                 arrivals: str | None = None, payloads: Path | None = None) -> Measured:
    """Run the tool's search against `url` for one case and read its capacity estimate.

    The one place that knows the search and analysis API: adapt it here if they change.
    """
    flags = {"endpoint": "bench", "url": url, "sla_latency_ms": case.sla_ms,
             "sla_percentile": case.percentile, "start_rps": start_rps,
             "max_test_seconds": budget_s or case.budget_s, "search": search,
             "arrivals": arrivals,  # None: the tool's default
             "payloads": None if payloads is None else str(payloads)}
    if search == "linear":
        flags["linear_step_rps"] = start_rps
    config = build_config({}, flags)
    try:
        output = run_load_test(config, workdir, region=None)
    except RunError as error:
        return Measured(None, None, None, math.nan, str(error))
    # What the tool itself would report: the same validity checks (a lost lane, a fail
    # only the saturated generator shows) and the same steps counted.
    analysis = analyse_output(config, output, instances_under_test=1)
    capacity = analysis.capacity
    if capacity is None:
        if analysis.error and analysis.error.startswith(NO_PASSING_STEP):
            return Measured(None, None, None, output.load_seconds)
        return Measured(None, None, None, output.load_seconds, analysis.error)
    low, high = capacity.ci
    return Measured(capacity.max_sustainable_rps, low, high, output.load_seconds)


def case_truth(case: Case) -> Truth:
    return truths(case.truth_law, case.slots, case.percentile, case.sla_ms,
                  requests=case.truth_requests)


def blind_start(truth: Truth) -> float:
    """The search's first rate, knowing only the order of magnitude (as a user would)."""
    return max(1.0, round(truth.poisson_rps / 20))


@dataclass(frozen=True)
class Verdict:
    error: float | None  # (point - truth) / truth
    basis_ok: bool
    load_ok: bool

    @property
    def met(self) -> bool:
        return (self.error is not None and LOW_ERROR <= self.error <= HIGH_ERROR
                and self.basis_ok and self.load_ok)


def judge(case: Case, truth: Truth, measured: Measured) -> Verdict:
    if measured.point_rps is None:
        return Verdict(None, False, False)
    error = (measured.point_rps - truth.poisson_rps) / truth.poisson_rps
    basis_ok = measured.ci_low_rps is not None and measured.ci_low_rps <= truth.poisson_rps
    limit = P99_BUDGET_S if case.percentile >= 99 else OTHER_BUDGET_S
    return Verdict(error, basis_ok, measured.load_s <= limit)


COLUMNS = (f"{'case':<18} {'law':<20} {'slots':>5} {'SLA':<15} {'poisson':>7} {'uniform':>7}"
           f" | {'point':>7} {'err%':>6} {'CI':>13} {'basis':>8} {'load s':>6} {'wall s':>6}")


def row(case: Case, truth: Truth, measured: Measured, wall_s: float, label: str = "") -> str:
    head = (f"{label or case.name:<18} {case.law:<20} {case.slots:>5} {case.sla:<15} "
            f"{truth.poisson_rps:7.1f} {truth.uniform_rps:7.1f}")
    if measured.error is not None:
        return f"{head} | run failed: {measured.error}"
    verdict = judge(case, truth, measured)
    if measured.point_rps is None:
        return (f"{head} | {'none':>7} {'n/a':>6} {'n/a':>13} {'n/a':>8} "
                f"{measured.load_s:6.1f} {wall_s:6.1f}")
    high = "open" if measured.ci_high_rps is None else f"{measured.ci_high_rps:.1f}"
    ci = f"{measured.ci_low_rps:.1f}-{high}"
    return (f"{head} | {measured.point_rps:7.1f} {100 * verdict.error:+6.1f} {ci:>13} "
            f"{'basis ok' if verdict.basis_ok else 'ABOVE':>8} {measured.load_s:6.1f} "
            f"{wall_s:6.1f}")


def select(names: str | None) -> list[Case]:
    if not names:
        return list(ZOO)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {c.name: c for c in ZOO}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}: the zoo has "
                         + ", ".join(known))
    return [known[n] for n in wanted]


def print_zoo(cases: list[Case], found: dict[str, Truth]) -> None:
    header = (f"{'case':<18} {'law':<20} {'slots':>5} {'SLA':<15} {'budget':>6} "
              f"{'saturation':>10} {'poisson':>7} {'uniform':>7} {'P/sat':>5}  why")
    print(header)
    print("-" * len(header))
    for case in cases:
        truth = found[case.name]
        print(f"{case.name:<18} {case.law:<20} {case.slots:>5} {case.sla:<15} "
              f"{case.budget_s:6.0f} {truth.saturation_rps:10.1f} {truth.poisson_rps:7.1f} "
              f"{truth.uniform_rps:7.1f} {truth.poisson_rps / truth.saturation_rps:5.0%}  "
              f"{case.why}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: the whole zoo)")
    parser.add_argument("--list", action="store_true",
                        help="print the zoo with its truths and exit (no load)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the model servers' service-time draws")
    parser.add_argument("--stairs", action="store_true",
                        help="also run the Inference-Recommender-style linear stairs")
    parser.add_argument("--baseline-budget", type=float, default=300.0,
                        help="load seconds allowed to the stairs")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep each case's load-test files (steps, samples) in DIR/CASE "
                             "to look into a miss afterwards (default: discarded)")
    parser.add_argument("--arrivals", choices=("uniform", "poisson"),
                        help="the tool's --arrivals (default: the tool's default)")
    args = parser.parse_args()
    cases = select(args.cases)

    # Truths first: the simulation must not compete with a load test for the CPU.
    found = {case.name: case_truth(case) for case in cases}
    if args.list:
        print_zoo(cases, found)
        return

    print(COLUMNS)
    print("-" * len(COLUMNS))
    worst: float | None = None
    missed: list[str] = []
    for case in cases:
        truth = found[case.name]
        start = blind_start(truth)
        runs = [("adaptive", case.budget_s)]
        if args.stairs:
            runs.append(("linear", args.baseline_budget))
        with (model_server(case.slots, law=case.law, seed=args.seed,
                           per_row=bool(case.rows_mix)) as server,
              tempfile.TemporaryDirectory() as tmp):
            payloads = case.write_payloads(Path(tmp))
            for search, budget in runs:
                began = time.monotonic()
                measured = measure_case(server.url, case, start, Path(tmp) / search,
                                        search=search, budget_s=budget,
                                        arrivals=args.arrivals, payloads=payloads)
                wall = time.monotonic() - began
                label = case.name if search == "adaptive" else "  (stairs)"
                print(row(case, truth, measured, wall, label), flush=True)
                if search != "adaptive":
                    continue
                verdict = judge(case, truth, measured)
                if verdict.error is not None and (worst is None
                                                  or abs(verdict.error) > abs(worst)):
                    worst = verdict.error
                if not verdict.met:
                    missed.append(case.name)
            if args.keep is not None:
                shutil.copytree(tmp, args.keep / case.name, dirs_exist_ok=True)

    worst_text = "n/a" if worst is None else f"{100 * worst:+.1f}%"
    print(f"\nworst point error: {worst_text} against the Poisson truth; "
          f"goals (point within {100 * LOW_ERROR:+.0f}%..{100 * HIGH_ERROR:+.0f}%, CI low <= "
          f"truth, <= {OTHER_BUDGET_S:.0f} s of load for p50/p90 and {P99_BUDGET_S:.0f} s "
          f"for p99): " + ("all met" if not missed else f"missed by {', '.join(missed)}"))


if __name__ == "__main__":
    main()
