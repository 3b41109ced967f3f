"""Measurement analysis: from raw per-request samples to step verdicts, capacity and target.

Pure functions over plain data. The Locust controller uses them to steer the search while
the test runs; the report recomputes everything from the raw samples written to disk.

A request's latency is measured from its *intended* send time (open-loop load), so a
stalled endpoint cannot hide behind a generator that slowed down with it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from tuner.errors import NoPassingStepError
from tuner.stats import percentile_refuted, percentile_supported

ACHIEVED_FRACTION_REQUIRED = 0.95
# A load is sustainable only if it could go on: latency still rising at the step's end
# must not breach the SLA within this many more seconds.
SUSTAIN_HORIZON_S = 60.0
SAMPLE_COLUMNS = ("step", "intended_s", "completed_s", "latency_ms", "ok")


@dataclass(frozen=True)
class Sla:
    """The latency/error objective a step must meet."""

    percentile: float  # e.g. 90 for p90
    latency_ms: float
    max_error_rate: float
    confidence: float = 0.95

    @property
    def quantile(self) -> float:
        return self.percentile / 100.0


@dataclass(frozen=True)
class StepSpec:
    """One constant-arrival-rate step the search asked for."""

    index: int
    offered_rps: float
    duration_s: float  # including warm-up
    warmup_s: float
    phase: str  # "ramp", "bisect", "linear" or "probe-down"
    # Set when the step was cut short to protect the endpoint; duration_s is then the
    # time it actually ran.
    abort_reason: str | None = None

    @property
    def window_s(self) -> float:
        return max(0.0, self.duration_s - self.warmup_s)


@dataclass(frozen=True)
class StepResult:
    """What one step measured and whether it met the SLA.

    verdict is "pass" (the SLA is statistically supported), "fail" (a limit is clearly
    broken: saturation, errors, instability, or a percentile significantly over the SLA) or
    "inconclusive" (too few requests to support the SLA, with no evidence against it).
    """

    index: int
    phase: str
    offered_rps: float
    achieved_rps: float
    requests: int
    errors: int
    error_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    sla_percentile_ms: float
    slow_requests: int
    duration_s: float
    warmup_s: float
    verdict: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict:
        row = asdict(self)
        row["reasons"] = list(self.reasons)
        row["passed"] = self.passed
        return row


@dataclass(frozen=True)
class LatencyTrend:
    first_ms: float
    last_ms: float
    slope_ms_per_s: float
    growing: bool  # rising in every quarter, beyond noise

    @property
    def projected_ms(self) -> float:
        return self.last_ms + max(0.0, self.slope_ms_per_s) * SUSTAIN_HORIZON_S


def latency_trend(intended_s: np.ndarray, latency_ms: np.ndarray,
                  spec: StepSpec) -> LatencyTrend | None:
    """Median latency per quarter of the window, and whether it climbs: a growing queue.

    Offered load above capacity makes the queue, and so latency, grow by (rate - capacity) /
    capacity seconds every second, however short the step; a stable load keeps quarter
    medians flat up to noise (their standard error, from the spread within each quarter).
    """
    edges = np.linspace(spec.warmup_s, spec.duration_s, 5)
    medians, errors, middles = [], [], []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        values = latency_ms[(intended_s >= low) & (intended_s < high)]
        if values.size < 5:
            return None
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        medians.append(float(q50))
        errors.append(1.2533 * (q75 - q25) / 1.349 / math.sqrt(values.size))
        middles.append((low + high) / 2)
    rise = medians[-1] - medians[0]
    noise = math.hypot(errors[0], errors[-1])
    monotone = all(b >= a for a, b in zip(medians, medians[1:], strict=False))
    growing = monotone and rise > max(3 * noise, 0.02 * medians[0])
    slope = rise / (middles[-1] - middles[0])
    return LatencyTrend(medians[0], medians[-1], slope, growing)


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan


def summarize_step(
    spec: StepSpec,
    intended_s: np.ndarray,
    completed_s: np.ndarray,
    latency_ms: np.ndarray,
    ok: np.ndarray,
    sla: Sla,
) -> StepResult:
    """Judge one step from its requests (times are seconds from the step's start)."""
    intended_s = np.asarray(intended_s, dtype=float)
    completed_s = np.asarray(completed_s, dtype=float)
    latency_ms = np.asarray(latency_ms, dtype=float)
    ok = np.asarray(ok, dtype=bool)

    in_window = (intended_s >= spec.warmup_s) & (intended_s < spec.duration_s)
    requests = int(in_window.sum())
    errors = int((in_window & ~ok).sum())
    error_rate = errors / requests if requests else 0.0
    good = latency_ms[in_window & ok]
    finished_in_window = (completed_s >= spec.warmup_s) & (completed_s < spec.duration_s)
    # Answers of any kind show the endpoint keeping up; only good ones count as throughput.
    answered_in_window = int(finished_in_window.sum())
    achieved_rps = (int((ok & finished_in_window).sum()) / spec.window_s
                    if spec.window_s > 0 else 0.0)

    slow = int((good > sla.latency_ms).sum()) + errors  # an error is no fast answer either
    sla_pct = _pct(good, sla.percentile)
    reasons: list[str] = []
    hard_fail = False

    if spec.abort_reason:
        reasons.append(f"aborted after {spec.duration_s:.1f} s: {spec.abort_reason}")
        hard_fail = True
    if requests == 0:
        reasons.append("no requests were sent in the measurement window")
        hard_fail = True
    # Saturation: the endpoint completed clearly fewer requests than were offered. Compare
    # with the requests actually scheduled in the window (which removes Poisson noise) and
    # allow a small boundary slack for requests straddling the window's edges.
    if requests and answered_in_window < ACHIEVED_FRACTION_REQUIRED * requests - 3:
        answered_rps = answered_in_window / spec.window_s
        reasons.append(
            f"saturated: answered {answered_rps:.1f} rps of {spec.offered_rps:.1f} offered"
        )
        hard_fail = True
    if requests and error_rate > sla.max_error_rate:
        reasons.append(f"error rate {error_rate:.2%} above {sla.max_error_rate:.2%}")
        hard_fail = True
    trend = latency_trend(intended_s[in_window & ok], latency_ms[in_window & ok], spec)
    if trend is not None and trend.growing and trend.projected_ms > sla.latency_ms:
        reasons.append(
            f"unstable: latency rising {trend.slope_ms_per_s:.0f} ms/s "
            f"({trend.first_ms:.0f} -> {trend.last_ms:.0f} ms), a queue building up")
        hard_fail = True
    n = requests
    if n and percentile_refuted(slow, n, sla.quantile, sla.confidence):
        reasons.append(
            f"p{sla.percentile:g} {sla_pct:.0f} ms over the {sla.latency_ms:g} ms SLA "
            f"({slow} of {n} requests slower)"
        )
        hard_fail = True

    if hard_fail:
        verdict = "fail"
    elif percentile_supported(slow, n, sla.quantile, sla.confidence):
        verdict = "pass"
    else:
        verdict = "inconclusive"
        reasons.append(
            f"{n} requests with {slow} slower than {sla.latency_ms:g} ms do not show "
            f"p{sla.percentile:g} within the SLA at {sla.confidence:.0%} confidence"
        )

    return StepResult(
        index=spec.index,
        phase=spec.phase,
        offered_rps=spec.offered_rps,
        achieved_rps=achieved_rps,
        requests=requests,
        errors=errors,
        error_rate=error_rate,
        p50_ms=_pct(good, 50),
        p90_ms=_pct(good, 90),
        p99_ms=_pct(good, 99),
        sla_percentile_ms=sla_pct,
        slow_requests=slow,
        duration_s=spec.duration_s,
        warmup_s=spec.warmup_s,
        verdict=verdict,
        reasons=tuple(reasons),
    )


def summarize_samples(specs: list[StepSpec], samples: pd.DataFrame, sla: Sla) -> list[StepResult]:
    """Judge every step from a samples frame with columns `SAMPLE_COLUMNS`."""
    results = []
    groups = dict(tuple(samples.groupby("step"))) if len(samples) else {}
    empty = pd.DataFrame({c: [] for c in SAMPLE_COLUMNS})
    for spec in specs:
        frame = groups.get(spec.index, empty)
        results.append(
            summarize_step(
                spec,
                frame["intended_s"].to_numpy(),
                frame["completed_s"].to_numpy(),
                frame["latency_ms"].to_numpy(),
                frame["ok"].to_numpy(dtype=bool),
                sla,
            )
        )
    return results


def _crossing(r1: float, v1: float, r2: float, v2: float, limit: float) -> float | None:
    """Where a metric rising from v1 (at r1) to v2 (at r2) reaches its limit, linearly."""
    if not (math.isfinite(v1) and math.isfinite(v2)) or v2 <= limit or v1 > limit or v2 <= v1:
        return None
    return r1 + (limit - v1) / (v2 - v1) * (r2 - r1)


def _limit_crossings(last_pass: StepResult, first_fail: StepResult, sla: Sla) -> list[float]:
    """For each limit the failing step broke, the load at which it was reached."""
    r1, r2 = last_pass.offered_rps, first_fail.offered_rps
    found = [
        _crossing(r1, last_pass.sla_percentile_ms, r2, first_fail.sla_percentile_ms,
                  sla.latency_ms),
        _crossing(r1, last_pass.error_rate, r2, first_fail.error_rate, sla.max_error_rate),
        _crossing(r1, 1 - last_pass.achieved_rps / r1, r2, 1 - first_fail.achieved_rps / r2,
                  1 - ACHIEVED_FRACTION_REQUIRED),
    ]
    return [c for c in found if c is not None]


def bounds_capacity(step: StepResult) -> bool:
    """A step that shows the load is too high: it failed, or it was inconclusive with
    evidence against the SLA (some slow requests)."""
    if step.verdict == "fail":
        return True
    return step.verdict == "inconclusive" and step.slow_requests > 0


def bracket_steps(steps: list[StepResult]) -> tuple[StepResult | None, StepResult | None]:
    """(last pass, first bound): the steps that bracket the capacity.

    The first bound is the lowest-rate step that did not pass, ignoring inconclusive steps
    with no slow request below every pass (too few requests at a low warm-up rate). The last
    pass is the highest statistically supported pass below it, so the lower end of the
    bracket is never more than the test showed.
    """
    pass_rates = [s.offered_rps for s in steps if s.passed]
    lowest_pass = min(pass_rates) if pass_rates else math.inf
    bounds = [s for s in steps
              if not s.passed and (bounds_capacity(s) or s.offered_rps > lowest_pass)]
    first_bound = min(bounds, key=lambda s: s.offered_rps) if bounds else None
    ceiling = first_bound.offered_rps if first_bound else math.inf
    below = [s for s in steps if s.passed and s.offered_rps < ceiling]
    last_pass = max(below, key=lambda s: s.offered_rps) if below else None
    return last_pass, first_bound


@dataclass(frozen=True)
class CapacityEstimate:
    """The highest load that met the SLA, and the steps that bracket it.

    The capacity lies in [last_pass_rps, first_fail_rps] at the step verdicts' confidence:
    the last pass statistically supports the SLA, and the first fail statistically (or by
    saturation) breaks it. `ci` is that interval, the upper end tightened to what the
    failing step achieved; the target is derived from its lower end.
    """

    max_sustainable_rps: float
    last_pass_rps: float
    first_fail_rps: float | None  # None: the test never found a failing load
    method: str
    ci_high_rps: float | None = None

    @property
    def ci(self) -> tuple[float, float | None]:
        return (self.last_pass_rps, self.ci_high_rps)


def estimate_capacity(steps: list[StepResult], sla: Sla) -> CapacityEstimate:
    """Highest passing load, interpolated toward the first failing load above it.

    The first failing load bounds the capacity: a pass above it is treated as noise, not
    capacity. Between the last pass below it and that failure, the load where the first limit
    (latency percentile, error rate, achieved share) was reached is interpolated linearly,
    and never put above what the failing step actually achieved.
    """
    last_pass, first_fail = bracket_steps(steps)
    if last_pass is None:
        tried = ", ".join(f"{s.offered_rps:g}" for s in sorted(steps, key=lambda s: s.offered_rps))
        raise NoPassingStepError(
            f"no load step met the SLA (tried {tried or 'nothing'} rps): lower --start-rps, "
            "relax the SLA, or check the endpoint's errors; nothing was applied"
        )
    if first_fail is None:
        return CapacityEstimate(last_pass.offered_rps, last_pass.offered_rps, None,
                                "highest passing step (no failing load was reached)")
    r1, r2 = last_pass.offered_rps, first_fail.offered_rps
    # The first limit reached decides; a failure without a measurable crossing (instability,
    # too few requests) gives no credit beyond the last pass.
    crossing = min(_limit_crossings(last_pass, first_fail, sla), default=r1)
    # A failing step that completed only X rps shows the endpoint cannot serve more than X.
    crossing = min(crossing, max(r1, first_fail.achieved_rps))
    crossing = min(max(crossing, r1), r2)
    high = min(r2, max(r1, first_fail.achieved_rps)) if first_fail.verdict == "fail" else r2
    return CapacityEstimate(crossing, r1, r2, "interpolated between last pass and first fail",
                            ci_high_rps=high)


# A generator process above this CPU share of its core is the bottleneck, not the endpoint.
GENERATOR_CPU_LIMIT = 90.0


# A step that could not even start this share of its arrivals on time was generator-bound.
GENERATOR_UNSENT_LIMIT = 0.05


def generator_limit(cpu_percents: list[float | None], send_lag_p90_ms: list[float | None],
                    sla: Sla, unsent_share: float = 0.0) -> str | None:
    """Why a step's load generator, not the endpoint, may have limited it (None: it didn't).

    Locust is single-threaded per process: a process near 100% of a core sends late.
    Requests sent late by more than a fifth of the SLA, or arrivals never sent before the
    step ended, also show the generator lagging.
    """
    cpu = max((c for c in cpu_percents if c is not None), default=0.0)
    lag = max((g for g in send_lag_p90_ms if g is not None), default=0.0)
    if unsent_share > GENERATOR_UNSENT_LIMIT:
        return f"load generator could not send {unsent_share:.0%} of the step's arrivals"
    if cpu >= GENERATOR_CPU_LIMIT:
        return f"load generator CPU at {cpu:.0f}% of a core"
    if lag > 0.2 * sla.latency_ms:
        return f"load generator sent requests {lag:.0f} ms late (p90)"
    return None


@dataclass(frozen=True)
class Recommendation:
    """The target-tracking value derived from a measured capacity."""

    max_sustainable_rps: float
    instances_under_test: int
    max_rps_per_instance: float
    safety_factor: float
    target_invocations_per_instance: float


def derive_target(max_sustainable_rps: float, instances_under_test: int,
                  safety_factor: float) -> Recommendation:
    """AWS's rule: target = max rps per instance x safety factor x 60.

    SageMakerVariantInvocationsPerInstance counts invocations per *minute* per instance,
    hence the 60.
    """
    if instances_under_test < 1:
        raise ValueError("instances_under_test must be at least 1")
    if not 0 < safety_factor <= 1:
        raise ValueError("safety_factor must be in (0, 1]")
    per_instance = max_sustainable_rps / instances_under_test
    target = round(per_instance * safety_factor * 60.0, 2)
    return Recommendation(max_sustainable_rps, instances_under_test, per_instance,
                          safety_factor, target)
