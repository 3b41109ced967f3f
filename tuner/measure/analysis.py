"""Measurement analysis: from raw per-request samples to step verdicts, capacity and target.

Pure functions over plain data. The Locust controller uses them to steer the search while
the test runs; the report recomputes everything from the raw samples written to disk.

A request's latency is measured from its *intended* send time (open-loop load), so a
stalled endpoint cannot hide behind a generator that slowed down with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from tuner.errors import NoPassingStepError
from tuner.measure.curve_fit import fitted_crossing_rps
from tuner.measure.slow_correlation import (
    latency_sketch,
    merge_sketches,
    simulated_correlation,
    simulated_slow_share,
)
from tuner.measure.stats import (
    binom_sf,
    exceedance_lower_bound,
    exceedance_upper_bound,
    percentile_refuted,
    percentile_supported,
)

__all__ = [
    "ACHIEVED_FRACTION_REQUIRED",
    "CORRELATION_CALIBRATION",
    "GENERATOR_CPU_LIMIT",
    "GENERATOR_UNSENT_LIMIT",
    "LEAN_CONFIDENCE",
    "MIN_SERVICE_SAMPLES",
    "NO_PASSING_STEP",
    "SAMPLE_COLUMNS",
    "SETTLE_RELAXATIONS",
    "SUSTAIN_HORIZON_S",
    "CapacityEstimate",
    "Evidence",
    "LatencyTrend",
    "QueueShape",
    "RateEvidence",
    "Recommendation",
    "Sla",
    "StepResult",
    "StepSpec",
    "Verdict",
    "autocorrelation_time",
    "beyond_independent_noise",
    "best_estimate",
    "bracket",
    "calibrated_correlation",
    "derive_target",
    "estimate_capacity",
    "fitted_estimate",
    "point_estimate",
    "generator_limit",
    "judge",
    "judged_specs",
    "latency_trend",
    "lean",
    "look_confidence",
    "low_load_sketch",
    "navigation_bracket",
    "pool_by_rate",
    "queue_shape",
    "step_generator_limit",
    "summarize_samples",
    "summarize_step",
]

ACHIEVED_FRACTION_REQUIRED = 0.95
# A load is sustainable only if it could go on: latency still rising at the step's end
# must not breach the SLA within this many more seconds.
SUSTAIN_HORIZON_S = 60.0
# One row per request; `payload` is the index of its body in the run's payload set (0 with
# a single body, and in runs written before payload sets existed).
SAMPLE_COLUMNS = ("step", "intended_s", "completed_s", "latency_ms", "ok", "payload")


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

    @property
    def allowed_share(self) -> float:
        """The share of requests the SLA lets be slower than its latency, 1 - q, exactly
        at ties: 1 - 0.9 is 0.09999999999999998 in floating point, so 6 slow of 60 at a
        p90 compared as over the SLA (and 1% at a p99 as within)."""
        return round((100.0 - self.percentile) / 100.0, 12)


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
    # A request not answered within this is a timeout (an error, and abandoned by the
    # client, though still queued at the endpoint).
    timeout_s: float = 10.0
    # Set when the step is no evidence at all: a lane (worker) never reported it, so the
    # endpoint got less load than `offered_rps` (`tuner.measure.lanes`). Such a step is not judged.
    invalid_reason: str | None = None

    @property
    def window_s(self) -> float:
        return max(0.0, self.duration_s - self.warmup_s)


class Verdict(StrEnum):
    """What a step (or all steps at one rate, pooled) showed about the SLA."""

    PASS = "pass"  # the SLA percentile is statistically supported, errors and trend fine
    FAIL = "fail"  # a limit is clearly broken: slow share, errors, instability, abort
    INCONCLUSIVE = "inconclusive"  # neither yet: more requests needed, never a bound


def look_confidence(confidence: float, look: int) -> float:
    """The confidence the `look`-th test of one rate is held to (alpha/2, alpha/4, ...):
    what `Evidence.test_confidence` judges with, and what the search plans a look with."""
    return 1.0 - (1.0 - confidence) / 2 ** look


@dataclass(frozen=True)
class Evidence:
    """The counts one or more steps at the same rate showed: everything a verdict needs.

    All counts are over the same requests: those *sent* (by intended time) in the
    measurement window, answered whenever they finished, up to the request timeout. An
    error or timeout is slower than any SLA.

    Requests that queue behind each other are not independent: near saturation a slow
    request is followed by more slow ones. The binomial tests therefore count *effective*
    requests, the raw counts divided by the latency series' integrated autocorrelation time
    (`autocorrelation_time`): independent requests count fully, a queue's clusters as few.
    """

    requests: int
    slow: int  # slower than the SLA, errors included
    errors: int
    answered: int  # got any answer within the timeout
    unstable: str | None = None  # why latency looked like a growing queue
    abort_reason: str | None = None
    effective_requests: float = -1.0  # -1: as many as `requests`
    effective_slow: float = -1.0
    looks: int = 1  # steps pooled: each is one more look at the same question

    def __post_init__(self) -> None:
        if self.effective_requests < 0:
            object.__setattr__(self, "effective_requests", float(self.requests))
        if self.effective_slow < 0:
            object.__setattr__(self, "effective_slow", float(self.slow))

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(self.requests + other.requests, self.slow + other.slow,
                        self.errors + other.errors, self.answered + other.answered,
                        self.unstable or other.unstable, self.abort_reason or other.abort_reason,
                        self.effective_requests + other.effective_requests,
                        self.effective_slow + other.effective_slow, self.looks + other.looks)

    @property
    def correlation(self) -> float:
        """Raw requests per effective one (>= 1)."""
        return self.requests / self.effective_requests if self.effective_requests else 1.0

    def test_confidence(self, confidence: float) -> float:
        """The confidence each test on this evidence is held to: the error rate is spent
        over the looks (alpha/2, alpha/4, ...), so that extending an inconclusive rate
        and testing again cannot add up to more than alpha of false verdicts."""
        return look_confidence(confidence, self.looks)

    @property
    def slow_share(self) -> float:
        return self.slow / self.requests if self.requests else math.nan

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def answered_share(self) -> float:
        return self.answered / self.requests if self.requests else 0.0

    @property
    def test_counts(self) -> tuple[int, int]:
        """(slow, requests) for the binomial tests: the effective counts, rounded."""
        if not self.requests:
            return 0, 0
        n = max(1, round(self.effective_requests))
        return min(n, round(self.effective_slow)), n

    def slow_share_bounds(self, confidence: float) -> tuple[float, float]:
        """Two-sided Clopper-Pearson interval of the share of slow requests."""
        tail = 1 - (1 - confidence) / 2
        slow, n = self.test_counts
        return (exceedance_lower_bound(slow, n, tail), exceedance_upper_bound(slow, n, tail))


def calibrated_correlation(window_tau: float) -> float:
    """Estimated inside one window, a queue's correlation time comes out 2-4x too short
    (the window holds few of its episodes): scaled up, as calibrated against the variance
    of slow shares over many simulated windows. Used until the queue model knows better."""
    return 1.0 + CORRELATION_CALIBRATION * (window_tau - 1.0)


# The window estimate's spread on independent requests, in standard deviations of
# Sokal's estimator there (sqrt(22 / n): a window of about 5 lags): its 90th percentile
# (simulated, lognormal latencies: 1.18 at 1,000 requests, 1.33 at 300, 1.39 at 100).
INDEPENDENT_TAU_NOISE = 1.2


def beyond_independent_noise(window_tau: float, requests: int) -> float:
    """A window's correlation time less what independent requests show by chance.

    On independent latencies the estimate is 1 half the time and up to 1.18 (1,000
    requests) or 1.33 (300) one time in ten; calibrated (x3) that cost a 1.5 s model's
    confirmation up to 40% of its effective requests for nothing (1,057 requests at 0.67
    of its capacity counted as 590 where the queue model says 954). Used only where the
    queue model's correlation stands beside it (`StepResult.evidence_at`): near a knee,
    where the window's estimate matters, the model's is the larger one, and a window with
    real clustering keeps nearly all of it (a correlation time of 9 over 1,000 requests
    loses 0.18). Offline (`tuner.measure.offline`, the 1.5 s model, the 5%-slow server and
    the low-rate p99 of `benchmarks/accuracy.py`, 160 seeds each): 184 of 480 runs in goal
    instead of 179, runs without a pass 91 instead of 101; the nine-case zoo at 40 seeds
    unchanged at 272 of 360."""
    if requests <= 0 or not math.isfinite(window_tau):
        return window_tau
    noise = INDEPENDENT_TAU_NOISE * math.sqrt(22.0 / requests)
    return max(1.0, window_tau - noise)


def autocorrelation_time(values: np.ndarray) -> float:
    """Integrated autocorrelation time of a series (>= 1), on ranks so that heavy tails
    and infinities do not dominate; Sokal's adaptive window (stop at lag >= 5 tau)."""
    n = values.size
    if n < 20:
        return 1.0
    # Average ranks: tied latencies (a constant service time) carry no order.
    _, position, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[position]
    centred = ranks - ranks.mean()
    if not centred.any():
        return 1.0
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, size)
    acf = np.fft.irfft(spectrum * np.conjugate(spectrum), size)[:n]
    acf /= acf[0]
    tau = 1.0
    for lag in range(1, n):
        tau += 2 * acf[lag]
        if lag >= 5 * tau:
            break
    return float(min(max(tau, 1.0), n))


def judge(evidence: Evidence, sla: Sla) -> tuple[Verdict, tuple[str, ...]]:
    """The one place a verdict is derived: fail on clear evidence, pass on statistical
    support for the SLA, inconclusive otherwise (more requests needed)."""
    q = sla.quantile
    slow, n = evidence.test_counts
    confidence = evidence.test_confidence(sla.confidence)
    counted = (f"{evidence.slow} of {evidence.requests} requests slower than "
               f"{sla.latency_ms:g} ms, errors included ({n} effective)")
    reasons: list[str] = []
    if evidence.abort_reason:
        reasons.append(f"aborted {evidence.abort_reason}")
    if evidence.requests == 0:
        reasons.append("no requests were sent in the measurement window")
    if evidence.requests and evidence.answered_share < ACHIEVED_FRACTION_REQUIRED:
        reasons.append(f"saturated: {evidence.answered_share:.1%} of the requests sent were "
                       "answered within the timeout")
    if evidence.requests and evidence.errors and (
            sla.max_error_rate == 0 or binom_sf(evidence.errors, evidence.requests,
                                                sla.max_error_rate) <= 1 - confidence):
        reasons.append(f"error rate {evidence.error_rate:.2%} above {sla.max_error_rate:.2%}")
    if evidence.unstable:
        reasons.append(evidence.unstable)
    if n and percentile_refuted(slow, n, q, confidence):
        reasons.append(f"{counted}: p{sla.percentile:g} over the SLA")
    if reasons:
        return Verdict.FAIL, tuple(reasons)
    if evidence.error_rate > sla.max_error_rate:
        return Verdict.INCONCLUSIVE, (
            f"error rate {evidence.error_rate:.2%} above {sla.max_error_rate:.2%}, "
            "not yet significantly",)
    if percentile_supported(slow, n, q, confidence):
        return Verdict.PASS, ()
    return Verdict.INCONCLUSIVE, (
        f"{counted} do not yet show p{sla.percentile:g} within the SLA at "
        f"{confidence:.1%} confidence",)


@dataclass(frozen=True)
class StepResult:
    """What one step measured and what it showed (see `Evidence` and `judge`)."""

    index: int
    phase: str
    offered_rps: float
    achieved_rps: float  # good answers to the window's requests, per second of window
    requests: int
    errors: int
    error_rate: float
    p50_ms: float  # percentiles count errors and timeouts as infinitely slow
    p90_ms: float
    p99_ms: float
    sla_percentile_ms: float
    slow_requests: int
    duration_s: float
    warmup_s: float
    verdict: Verdict
    reasons: tuple[str, ...] = field(default_factory=tuple)
    answered: int = -1  # -1: an old record without it (then: requests)
    slow_share_low: float = math.nan
    slow_share_high: float = math.nan
    trend_ms_per_s: float = math.nan
    unstable: str | None = None
    abort_reason: str | None = None
    # Answers that arrived inside the window, per second: what the endpoint got through.
    # Below the offered rate, a lower bound on its saturation throughput.
    completed_rps: float = math.nan
    autocorrelation_time: float = 1.0  # of the window's latencies, in requests
    # Of the window's slow-or-not series (`summarize_step`); nan: a record from before it.
    slow_autocorrelation_time: float = math.nan
    latency_cv2: float = math.nan  # squared coefficient of variation of good latencies
    # Quantiles of the good latencies (`slow_correlation.latency_sketch`): at low load, the
    # service law the queue model replays. Not part of the step's record (`to_dict`).
    latency_sketch_ms: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))
        if self.answered < 0:
            object.__setattr__(self, "answered", self.requests)
        object.__setattr__(self, "latency_sketch_ms", tuple(self.latency_sketch_ms))

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def evidence(self) -> Evidence:
        return self.evidence_at(None)

    def evidence_at(self, modelled: float | None, far_below_knee: bool = False) -> Evidence:
        """The step's evidence, its requests as correlated as the queue model says
        (`QueueShape.correlation`), and never less than the window showed (calibrated):
        near a p99's knee slow requests come in bursts rarer than any affordable
        simulation sees, and the window may have caught one, or its latencies near the
        SLA may foretell one (the latency series, floored at half the SLA).

        `far_below_knee` (`QueueShape.far_below_knee`): the rate is well under both the
        saturation seen and the SLA's knee, and the model's correlation is trusted beside
        the slow requests' own clustering (with a handful of slow requests that is about
        1: in practice the model's counts). Latencies between half the SLA and the SLA
        still cluster there (a busy second) without making the slow requests cluster,
        and counting them would take several times the requests a pass needs (a p99 at
        40% of saturation: about 7 raw requests per independent one instead of the
        queue's 1.3-1.5)."""
        series_tau = self.autocorrelation_time
        if (far_below_knee and modelled is not None
                and math.isfinite(self.slow_autocorrelation_time)):
            series_tau = self.slow_autocorrelation_time
        if modelled is not None:
            series_tau = beyond_independent_noise(series_tau, self.requests)
        measured = calibrated_correlation(max(1.0, series_tau))
        tau = measured if modelled is None else max(measured, modelled)
        if not math.isfinite(tau):
            return Evidence(self.requests, self.slow_requests, self.errors, self.answered,
                            self.unstable, self.abort_reason, 0.0, 0.0)
        return Evidence(self.requests, self.slow_requests, self.errors, self.answered,
                        self.unstable, self.abort_reason, self.requests / tau,
                        self.slow_requests / tau)

    def to_dict(self) -> dict:
        row = asdict(self)
        del row["latency_sketch_ms"]
        row["verdict"] = str(self.verdict)
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
                  spec: StepSpec, autocorrelation: float = 1.0) -> LatencyTrend | None:
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
        # Correlated latencies (a queue) carry fewer independent values than requests.
        independent = max(1.0, values.size / max(1.0, autocorrelation))
        errors.append(1.2533 * (q75 - q25) / 1.349 / math.sqrt(independent))
        middles.append((low + high) / 2)
    rise = medians[-1] - medians[0]
    noise = math.hypot(errors[0], errors[-1])
    monotone = all(b >= a for a, b in zip(medians, medians[1:], strict=False))
    growing = monotone and rise > max(3 * noise, 0.02 * medians[0])
    slope = rise / (middles[-1] - middles[0])
    return LatencyTrend(medians[0], medians[-1], slope, growing)


def _pct(values: np.ndarray, q: float) -> float:
    """Nearest-rank percentile (no interpolation, so an infinite error latency stays a
    clean infinity rather than NaN)."""
    return float(np.percentile(values, q, method="inverted_cdf")) if values.size else math.nan


def summarize_step(
    spec: StepSpec,
    intended_s: np.ndarray,
    completed_s: np.ndarray,
    latency_ms: np.ndarray,
    ok: np.ndarray,
    sla: Sla,
) -> StepResult:
    """Judge one step from its requests (times are seconds from the step's start).

    Every count is over the requests *sent* in the window (by intended time), answered
    whenever they finished: a slow model's answers that arrive after the window closes
    still count for the window's requests.
    """
    intended_s = np.asarray(intended_s, dtype=float)
    completed_s = np.asarray(completed_s, dtype=float)
    latency_ms = np.asarray(latency_ms, dtype=float)
    ok = np.asarray(ok, dtype=bool)

    in_window = (intended_s >= spec.warmup_s) & (intended_s < spec.duration_s)
    requests = int(in_window.sum())
    errors = int((in_window & ~ok).sum())
    answered = int((in_window & (latency_ms < spec.timeout_s * 1000.0)).sum())
    good = in_window & ok
    achieved_rps = int(good.sum()) / spec.window_s if spec.window_s > 0 else 0.0
    finished = (completed_s >= spec.warmup_s) & (completed_s < spec.duration_s) & ok
    completed_rps = int(finished.sum()) / spec.window_s if spec.window_s > 0 else 0.0
    # An error or timeout is no fast answer: it counts as slower than any SLA, in the
    # test and in every reported percentile.
    effective = np.where(ok, latency_ms, math.inf)[in_window]
    is_slow = effective > sla.latency_ms
    slow = int(is_slow.sum())

    # The correlation that matters is the queue's near the SLA: latencies below half of
    # it are flattened (ties), so that harmless jitter at low load shows no clustering,
    # while a queue's slow episodes near the SLA do, even before any request breaks it.
    order = np.argsort(intended_s[in_window], kind="stable")
    raw_tau = autocorrelation_time(np.maximum(effective[order], sla.latency_ms / 2))
    # What the binomial test's variance needs is the slow-or-not series' own correlation:
    # far below the knee that one counts (`StepResult.evidence_at`).
    slow_tau = autocorrelation_time(is_slow[order].astype(float))
    tau = calibrated_correlation(raw_tau)
    # The trend's noise comes from the whole latency distribution's clustering.
    good_order = np.argsort(intended_s[good], kind="stable")
    trend_tau = 1.0 + CORRELATION_CALIBRATION * (
        autocorrelation_time(latency_ms[good][good_order]) - 1.0)
    trend = latency_trend(intended_s[good], latency_ms[good], spec, trend_tau)
    unstable = None
    if trend is not None and trend.growing and trend.projected_ms > sla.latency_ms:
        unstable = (f"unstable: latency rising {trend.slope_ms_per_s:.0f} ms/s "
                    f"({trend.first_ms:.0f} -> {trend.last_ms:.0f} ms), a queue building up")
    abort = (f"after {spec.duration_s:.1f} s: {spec.abort_reason}" if spec.abort_reason
             else None)
    evidence = Evidence(requests, slow, errors, answered, unstable, abort, requests / tau,
                        slow / tau)
    verdict, reasons = judge(evidence, sla)
    low, high = evidence.slow_share_bounds(sla.confidence)
    return StepResult(
        index=spec.index,
        phase=spec.phase,
        offered_rps=spec.offered_rps,
        achieved_rps=achieved_rps,
        requests=requests,
        errors=errors,
        error_rate=evidence.error_rate,
        p50_ms=_pct(effective, 50),
        p90_ms=_pct(effective, 90),
        p99_ms=_pct(effective, 99),
        sla_percentile_ms=_pct(effective, sla.percentile),
        slow_requests=slow,
        duration_s=spec.duration_s,
        warmup_s=spec.warmup_s,
        verdict=verdict,
        reasons=reasons,
        answered=answered,
        slow_share_low=low,
        slow_share_high=high,
        trend_ms_per_s=trend.slope_ms_per_s if trend else math.nan,
        unstable=unstable,
        abort_reason=abort,
        completed_rps=completed_rps,
        autocorrelation_time=raw_tau,
        slow_autocorrelation_time=slow_tau,
        latency_cv2=_cv2(latency_ms[good]),
        latency_sketch_ms=latency_sketch(latency_ms[good]),
    )


def _cv2(values: np.ndarray) -> float:
    if values.size < 2 or values.mean() <= 0:
        return math.nan
    return float(values.var() / values.mean() ** 2)


def judged_specs(specs: list[StepSpec]) -> list[StepSpec]:
    """The steps that are evidence: not those a lane never reported (`invalid_reason`),
    whose samples show only part of the load the step claims to have offered."""
    return [spec for spec in specs if not spec.invalid_reason]


def summarize_samples(specs: list[StepSpec], samples: pd.DataFrame, sla: Sla) -> list[StepResult]:
    """Judge every valid step from a samples frame with columns `SAMPLE_COLUMNS`; invalid
    steps (see `judged_specs`) are left out, never judged on partial load."""
    results = []
    groups = dict(tuple(samples.groupby("step"))) if len(samples) else {}
    empty = pd.DataFrame({c: [] for c in SAMPLE_COLUMNS})
    for spec in judged_specs(specs):
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


@dataclass(frozen=True)
class RateEvidence:
    """Every step offered at one rate, pooled: repeated steps add up their requests."""

    offered_rps: float
    evidence: Evidence
    verdict: Verdict
    reasons: tuple[str, ...]
    achieved_rps: float  # request-weighted over the steps
    steps: tuple[int, ...]
    # Passed together with the consecutive rates above it up to this one
    # (`_supported_from_above`); None: on its own requests, or not passed.
    pooled_up_to_rps: float | None = None

    def to_dict(self) -> dict:
        """The rate's pooled verdict as the report shows it (result.json's
        `search.rates`): what the capacity rests on, beside each step's own verdict."""
        slow, effective = self.evidence.test_counts
        return {"offered_rps": self.offered_rps, "steps": list(self.steps),
                "requests": self.evidence.requests, "slow": self.evidence.slow,
                "effective_requests": effective, "effective_slow": slow,
                "slow_share": self.evidence.slow_share, "verdict": str(self.verdict),
                "reasons": list(self.reasons), "pooled_up_to_rps": self.pooled_up_to_rps}


# Within-window correlation times are underestimated by about this factor (see
# summarize_step).
CORRELATION_CALIBRATION = 3.0
# A step that got through less than this share of its offered rate was overloaded.
OVERLOADED = 0.9
# Steps at up to this share of the saturation seen show the service law, little queueing.
LOW_LOAD_SHARE = 0.35
# A queue started from empty needs this many relaxation times to look like its steady state.
SETTLE_RELAXATIONS = 2.0
# A rate is far below the knee (`QueueShape.far_below_knee`) at up to this share of the
# saturation seen, where the simulated queue puts at most `FAR_BELOW_SLA_SHARE` of the
# slow share the SLA allows: there the queue model's correlation is trusted beside the
# slow requests' own (`StepResult.evidence_at`). Elsewhere, near the saturation or near
# the SLA's knee (which a 5%-slow server reaches at 0.58 of its saturation), the window's
# latency series keeps its say.
FAR_BELOW_KNEE = 0.65
FAR_BELOW_SLA_SHARE = 0.5
# Steps whose latencies say less than this about the service time's variability (too few
# answers) leave the squared coefficient of variation at an exponential's.
MIN_SERVICE_SAMPLES = 30


@dataclass(frozen=True)
class QueueShape:
    """What the steps so far say about the endpoint as a queue.

    `saturation_rps` is a lower bound on its saturation throughput (the most answers per
    second any step got through; None before any step was over the SLA), `service_cv2` the
    squared coefficient of variation of its service times (from the lowest load) and
    `service_sketch_ms` their quantiles (the low-load steps merged; empty until a failing
    step could not keep up, see `queue_shape`).

    With a sketch, the correlation of slow requests at a rate is simulated
    (`slow_correlation.simulated_correlation`): an M/G/c queue with that service law and
    the slots nearest the saturation seen, saturating exactly there. Without one (old
    records, too few answers), a heavy-traffic approximation: the backlog behaves like a
    reflected random walk with drift -(saturation - rate) and variance (1 + cv2) x rate
    per second, relaxes in variance / drift^2 seconds, and latencies stay correlated about
    as long. Both are conservative with a saturation that is a lower bound.
    """

    saturation_rps: float | None
    service_cv2: float
    service_sketch_ms: tuple[float, ...] = ()
    sla_ms: float = 0.0
    service_samples: int = 0  # the answers the sketch was read from
    allowed_slow_share: float = 0.0  # 1 - the SLA's quantile; 0: unknown (old callers)

    def relaxation_s(self, rate_rps: float) -> float:
        if self.saturation_rps is None:
            return 0.0
        if rate_rps >= self.saturation_rps:
            return math.inf
        # Always the heavy-traffic time, even with a simulated correlation: that one is
        # measured over 20 s windows and says nothing of a backlog that takes longer to
        # build; overstating the warm-up costs load seconds, understating it passes a
        # queue still filling.
        return (1 + self.service_cv2) * rate_rps / (self.saturation_rps - rate_rps) ** 2

    def settle_time_s(self, rate_rps: float) -> float:
        """How long a queue at this rate needs, from empty, to reach its steady state: a
        step measured sooner sees a queue still filling, an optimistic verdict."""
        return SETTLE_RELAXATIONS * self.relaxation_s(rate_rps)

    def correlation(self, rate_rps: float) -> float | None:
        """Requests per independent one at this rate (>= 1), about 2 x relaxation time x
        rate; None before any step failed or at or above the saturation seen (no model:
        the window's own correlation counts, and a pass is excluded by `settle_time_s`)."""
        if self.saturation_rps is None or rate_rps >= self.saturation_rps:
            return None  # no model there: at or above saturation nothing settles
        simulated = self._simulated(rate_rps)
        if simulated is not None:
            return simulated
        return max(1.0, 2.0 * self.relaxation_s(rate_rps) * rate_rps)

    def far_below_knee(self, rate_rps: float) -> bool:
        """At most `FAR_BELOW_KNEE` of the saturation seen (a lower bound: the true
        share is smaller still), and the simulated queue (there is one: a failing step
        could not keep up) puts the rate's slow share at most `FAR_BELOW_SLA_SHARE` of
        what the SLA allows (it saturates at the saturation seen: more queueing than the
        endpoint may have)."""
        if (not self._simulates or self.allowed_slow_share <= 0
                or rate_rps > FAR_BELOW_KNEE * self.saturation_rps):
            return False
        share = simulated_slow_share(rate_rps, self.service_sketch_ms, self.service_samples,
                                     self.saturation_rps, self.sla_ms)
        return share <= FAR_BELOW_SLA_SHARE * self.allowed_slow_share

    @property
    def _simulates(self) -> bool:
        """A simulated queue exists: a saturation, a service sketch and an SLA to count by."""
        return (self.saturation_rps is not None and bool(self.service_sketch_ms)
                and self.sla_ms > 0)

    def _simulated(self, rate_rps: float) -> float | None:
        if not self._simulates:
            return None
        return simulated_correlation(rate_rps, self.service_sketch_ms, self.service_samples,
                                     self.saturation_rps, self.sla_ms)


def queue_shape(steps: list[StepResult], sla: Sla) -> QueueShape:
    """The queue the steps show, once some step was over the SLA (failed, or more slow
    requests than it allows): its saturation at least the most answers per second any
    step got through; variability from the lowest load, and the service law from every
    step at little load (`LOW_LOAD_SHARE` of that saturation; else the lowest step): one
    low-rate step holds too few answers to show a long tail's mean or the SLA's tail."""
    over = any(s.verdict is Verdict.FAIL or _over_sla(s.evidence, sla) for s in steps)
    fails = [s.completed_rps for s in steps if over and math.isfinite(s.completed_rps)]
    saturation = max(fails) if fails else None
    measured = [s for s in steps if s.requests - s.errors >= MIN_SERVICE_SAMPLES
                and math.isfinite(s.latency_cv2)]
    lowest = min(measured, key=lambda s: s.offered_rps) if measured else None
    # The simulated model needs a saturation that is one: a failing step that could not
    # keep up. Without one the most answers per second is about the highest rate offered
    # (a short window's completions are noisy), and a queue saturating there would call
    # every rate near it hopelessly correlated; the heavy-traffic formula stays.
    any_overloaded = any(s.verdict is Verdict.FAIL and overloaded(s) for s in steps)
    service, samples = (low_load_sketch(steps, saturation)
                        if any_overloaded and saturation is not None else ((), 0))
    return QueueShape(saturation, lowest.latency_cv2 if lowest is not None else 1.0,
                      service, sla.latency_ms, samples, sla.allowed_share)


def low_load_sketch(steps: list[StepResult], saturation_rps: float
                    ) -> tuple[tuple[float, ...], int]:
    """(The service law's sketch, the answers it was read from): every step at little load
    (`LOW_LOAD_SHARE` of the saturation; else the lowest step) merged."""
    sketched = [s for s in steps if s.latency_sketch_ms]
    low_load = [s for s in sketched if s.offered_rps <= LOW_LOAD_SHARE * saturation_rps]
    if not low_load and sketched:
        low_load = [min(sketched, key=lambda s: s.offered_rps)]
    return (merge_sketches([(s.latency_sketch_ms, s.requests - s.errors) for s in low_load]),
            sum(s.requests - s.errors for s in low_load))


def overloaded(step: StepResult) -> bool:
    """The endpoint got through clearly fewer answers than the step offered."""
    return math.isfinite(step.completed_rps) and step.completed_rps < OVERLOADED * step.offered_rps


def _over_sla(evidence: Evidence, sla: Sla) -> bool:
    """More slow requests than the SLA allows, at the best estimate's confidence."""
    slow, n = evidence.test_counts
    return bool(n) and exceedance_lower_bound(slow, n, LEAN_CONFIDENCE) > sla.allowed_share


def pool_by_rate(steps: list[StepResult], sla: Sla,
                 shape: QueueShape | None = None) -> list[RateEvidence]:
    """One pooled verdict per offered rate, lowest rate first.

    Each step's requests count as many independent ones as the larger of its measured
    and its queue's modelled correlation allows (`QueueShape.correlation`; far below the
    knee the measured one is the slow requests' own, `StepResult.evidence_at`). Evidence
    against the SLA counts from every step; evidence for it only from steps that warmed
    up long enough for the queue to settle at that rate: a queue still filling passes
    loads it could not sustain. `shape` is `queue_shape(steps, sla)` when the caller
    has it already (the search builds it once per step planned).
    """
    shape = shape if shape is not None else queue_shape(steps, sla)
    groups: dict[float, list[int]] = {}  # positions in `steps`, by offered rate
    for position, step in enumerate(steps):
        groups.setdefault(step.offered_rps, []).append(position)
    pooled = []
    settled_steps: dict[int, Evidence] = {}  # by position in `steps`: what counts for the SLA
    for rate in sorted(groups):
        members = [steps[i] for i in groups[rate]]
        correlation = shape.correlation(rate)
        far = shape.far_below_knee(rate)
        each = {i: steps[i].evidence_at(correlation, far) for i in groups[rate]}
        evidence = _total(list(each.values()))
        verdict, reasons = judge(evidence, sla)
        settle = shape.settle_time_s(rate)
        settled = {i: e for i, e in each.items() if steps[i].warmup_s >= settle}
        settled_steps.update(settled)
        if verdict is Verdict.PASS and len(settled) < len(members):
            verdict, reasons = (judge(_total(list(settled.values())), sla)
                                if settled else (Verdict.INCONCLUSIVE, ()))
            if verdict is not Verdict.PASS:
                verdict = Verdict.INCONCLUSIVE
                reasons = (f"the queue may not have settled: {rate:g} rps needs "
                           f"{settle:.0f} s of warm-up near the "
                           f"{shape.saturation_rps:.0f} rps the failing steps got through",)
        weight = sum(max(1, s.requests) for s in members)
        achieved = sum(s.achieved_rps * max(1, s.requests) for s in members) / weight
        pooled.append(RateEvidence(rate, evidence, verdict, reasons, achieved,
                                   tuple(s.index for s in members)))
    in_order = [(steps[i].offered_rps, settled_steps[i]) for i in sorted(settled_steps)]
    return _supported_from_above(pooled, in_order, sla)


def _supported_from_above(rates: list[RateEvidence], settled_steps: list[tuple[float, Evidence]],
                          sla: Sla) -> list[RateEvidence]:
    """An inconclusive rate passes when its requests and those at the consecutive rates
    above it, together, show the SLA: a queue's slow share cannot fall as its load rises
    (under a stationary load waiting times grow stochastically with the arrival rate), so
    the share at the lowest rate is at most the pooled share. An assumption about the
    endpoint, not a law: dynamic batching that waits for a batch to fill, or a model that
    warms up during the run, can be slower at low load than above it; a rate whose own
    requests lean to fail is never lifted, nor one whose own error rate is over the limit
    (errors need not rise with load: a cold start, an awkward payload).

    Why: a slow share near the SLA's (a 1.5 s model: 7.7% slow at idle against a p90's
    10%) needs over a thousand independent requests at one rate to show the SLA, more
    than a 150 s budget affords after the ramp; the navigation's steps just above the
    confirmation hold hundreds more.

    As at one rate, only settled steps (`settled_steps`: (rate, evidence), in the order
    they ran) count for the SLA, and every step pooled is one more look at the question
    (`Evidence.test_confidence`: a pool of k steps is held to alpha/2^k). A pool stops
    below the first rate that failed: above it the shares are over the SLA's and could
    only sink it. Pools are judged as the steps came, and a pass once shown stays: a step
    run later between a rate and the rates that carried it (a confirmation) adds to the
    pool and one more look, which would otherwise take the pass back after the search
    had planned around it. At any one time the pools tried at a rate have more looks
    than its own and each more than the last, so they spend at most what its own looks
    left over; across a run a pool that gains a rate in between reuses a look count, an
    overrun the simulation test counts (six rates, steps in random order, all at exactly
    the SLA's share: the lowest passes in 3.7% of runs; 2.3% without pooling, 8.9% were
    each pool one look; `tests/functional/test_measurement_sim.py`)."""
    failed = sorted(r.offered_rps for r in rates if r.verdict is Verdict.FAIL)
    eligible = {r.offered_rps for r in rates
                if r.verdict is Verdict.INCONCLUSIVE and lean(r, sla) is not Verdict.FAIL
                and r.evidence.error_rate <= sla.max_error_rate}
    shown: dict[float, tuple[float, Evidence]] = {}
    so_far: dict[float, Evidence] = {}
    for newest, evidence in settled_steps:
        so_far[newest] = so_far[newest] + evidence if newest in so_far else evidence
        for low in sorted(so_far):
            if low > newest:
                break
            if low in eligible and low not in shown:
                pool = _first_passing_pool(low, newest, so_far, failed, sla)
                if pool is not None:
                    shown[low] = pool
    return [r if r.offered_rps not in shown else _pooled_pass(r, *shown[r.offered_rps], sla)
            for r in rates]


def _first_passing_pool(low: float, newest: float, so_far: dict[float, Evidence],
                        failed: list[float], sla: Sla) -> tuple[float, Evidence] | None:
    """(Highest rate, pooled evidence) of the first pool from `low` up that shows the SLA
    among those the newest step (at `newest`) joined; None if none does. Pools without
    it were judged when their own last step came."""
    ceiling = next((rate for rate in failed if rate > low), math.inf)
    evidence = so_far[low]
    for high in sorted(rate for rate in so_far if low < rate < ceiling):
        evidence = evidence + so_far[high]
        if high >= newest and judge(evidence, sla)[0] is Verdict.PASS:
            return high, evidence
    return None


def _pooled_pass(rate: RateEvidence, high_rps: float, evidence: Evidence,
                 sla: Sla) -> RateEvidence:
    return replace(rate, verdict=Verdict.PASS, pooled_up_to_rps=high_rps, reasons=(
        f"with the rates up to {high_rps:g} rps: {evidence.slow} of {evidence.requests} "
        f"requests slower than {sla.latency_ms:g} ms ({evidence.test_counts[1]} effective) "
        f"show p{sla.percentile:g} within the SLA at the lowest of them (the slow share "
        "cannot fall as load rises)",))


def _total(evidence: list[Evidence]) -> Evidence:
    """Steps' evidence added up, in the order given (at least one)."""
    total = evidence[0]
    for other in evidence[1:]:
        total = total + other
    return total


def bracket(rates: list[RateEvidence]) -> tuple[RateEvidence | None, RateEvidence | None]:
    """(last pass, first fail): the rates that bracket the capacity.

    The first fail is the lowest rate with clear evidence against the SLA; the last pass
    the highest rate below it whose pooled requests statistically support the SLA.
    Inconclusive rates bound nothing: they only say that more requests are needed.
    """
    fails = [r for r in rates if r.verdict is Verdict.FAIL]
    first_fail = min(fails, key=lambda r: r.offered_rps) if fails else None
    ceiling = first_fail.offered_rps if first_fail else math.inf
    passes = [r for r in rates if r.verdict is Verdict.PASS and r.offered_rps < ceiling]
    last_pass = max(passes, key=lambda r: r.offered_rps) if passes else None
    return last_pass, first_fail


@dataclass(frozen=True)
class CapacityEstimate:
    """The highest load that met the SLA, and the rates that bracket it.

    The capacity lies in [last_pass_rps, first_fail_rps] at the verdicts' confidence: the
    last pass statistically supports the SLA, the first fail statistically breaks it. `ci`
    is that interval; the target is derived from its lower end. The point estimate is where
    the share of slow requests (errors included) reaches 1 - q: the queue model fitted to
    every rate where there is a fit, else interpolated between two measured rates
    (`point_estimate`).
    """

    max_sustainable_rps: float
    last_pass_rps: float
    first_fail_rps: float | None  # None: the test never found a failing load
    method: str
    ci_high_rps: float | None = None

    @property
    def ci(self) -> tuple[float, float | None]:
        return (self.last_pass_rps, self.ci_high_rps)


def _crossing(r1: float, v1: float, r2: float, v2: float, limit: float) -> float | None:
    """Where a metric rising from v1 (at r1) to v2 (at r2) reaches its limit, linearly."""
    if not (math.isfinite(v1) and math.isfinite(v2)) or v2 <= limit or v1 > limit or v2 <= v1:
        return None
    return r1 + (limit - v1) / (v2 - v1) * (r2 - r1)


def _first_crossing(points: list[tuple[float, float]], limit: float) -> float | None:
    for (r1, v1), (r2, v2) in zip(points, points[1:], strict=False):
        found = _crossing(r1, v1, r2, v2, limit)
        if found is not None:
            return found
    return None


# How sure a best estimate must be of which side of the SLA a rate's slow share lies on
# before it counts the rate as one side or the other; thinner evidence leaves it unknown,
# and an unknown rate above the sustainable ones is taken as the limit (conservative).
LEAN_CONFIDENCE = 0.75


def lean(rate: RateEvidence, sla: Sla) -> Verdict:
    """Which side of the SLA the evidence points to, significant or not: PASS, FAIL, or
    INCONCLUSIVE when even that is unclear (the point estimate's view, not a verdict)."""
    if rate.verdict is not Verdict.INCONCLUSIVE:
        return rate.verdict
    slow, n = rate.evidence.test_counts
    allowed = sla.allowed_share
    if n and exceedance_upper_bound(slow, n, LEAN_CONFIDENCE) <= allowed:
        return Verdict.PASS
    if n and exceedance_lower_bound(slow, n, LEAN_CONFIDENCE) > allowed:
        return Verdict.FAIL
    return Verdict.INCONCLUSIVE


def navigation_bracket(rates: list[RateEvidence], sla: Sla
                       ) -> tuple[RateEvidence | None, RateEvidence | None]:
    """(highest rate leaning to pass, lowest rate above it leaning to fail or unknown):
    where the best estimate of the capacity lies."""
    leans = {r.offered_rps: lean(r, sla) for r in rates}

    def contradicted(rate: RateEvidence) -> bool:
        # A rate that only leans to fail (not significantly) while a higher one with at
        # least as many effective requests leans to pass is noise: latency does not fall
        # as the load rises. Left unknown, it does not cap the estimate.
        return rate.verdict is Verdict.INCONCLUSIVE and any(
            leans[other.offered_rps] is Verdict.PASS and other.offered_rps > rate.offered_rps
            and other.evidence.effective_requests >= rate.evidence.effective_requests
            for other in rates)

    fails = [r for r in rates if leans[r.offered_rps] is Verdict.FAIL and not contradicted(r)]
    high = min(fails, key=lambda r: r.offered_rps) if fails else None
    ceiling = high.offered_rps if high else math.inf
    passes = [r for r in rates if leans[r.offered_rps] is Verdict.PASS
              and r.offered_rps < ceiling]
    low = max(passes, key=lambda r: r.offered_rps) if passes else None
    floor = low.offered_rps if low else 0.0
    unknown = [r for r in rates if floor < r.offered_rps < ceiling
               and leans[r.offered_rps] is Verdict.INCONCLUSIVE]
    if unknown:
        high = min(unknown, key=lambda r: r.offered_rps)
    return low, high


def best_estimate(rates: list[RateEvidence], sla: Sla) -> float | None:
    """Where the slow share (or the error rate) reaches its limit, between the highest
    rate leaning to pass and the lowest above it leaning to fail, linearly; at an unknown
    rate whose share is still within the SLA, that rate (no credit beyond it)."""
    low, high = navigation_bracket(rates, sla)
    if low is None:
        return None
    if high is None or high.offered_rps <= low.offered_rps:
        return low.offered_rps
    if _stops_at_unknown(high, sla):
        return high.offered_rps
    allowed = sla.allowed_share
    crossings = [
        _first_crossing([(r.offered_rps, r.evidence.slow_share) for r in (low, high)],
                        allowed),
        _error_crossing(low, high, sla),
    ]
    point = min((c for c in crossings if c is not None), default=low.offered_rps)
    return min(max(point, low.offered_rps), high.offered_rps)


def _error_crossing(low: RateEvidence, high: RateEvidence, sla: Sla) -> float | None:
    """Where the error rate reaches the SLA's limit between two rates, linearly (None: it
    does not, or the SLA sets no limit)."""
    if sla.max_error_rate <= 0:
        return None
    return _first_crossing([(r.offered_rps, r.evidence.error_rate) for r in (low, high)],
                           sla.max_error_rate)


def _stops_at_unknown(high: RateEvidence | None, sla: Sla) -> bool:
    """The rate above the highest leaning to pass leans to neither side and its share is
    still within the SLA: the best estimate stops there, with no credit beyond it."""
    return (high is not None and lean(high, sla) is Verdict.INCONCLUSIVE
            and high.evidence.slow_share <= sla.allowed_share)


def fitted_estimate(steps: list[StepResult], rates: list[RateEvidence], sla: Sla,
                    ceiling_rps: float, shape: QueueShape | None = None) -> float | None:
    """Where the queue model fitted to every measured rate puts the crossing, at the low
    end of the fits the measurements allow (`curve_fit`), never past a rate above the
    highest leaning to pass that leans to fail or whose slow share or error rate is over
    the SLA, nor past where the error rate crosses its limit, nor past `ceiling_rps`; None
    with nothing measured above the highest rate leaning to pass (no crossing in sight) or
    no model.

    Two places where the two-rate interpolation (`best_estimate`) falls short: it stops at
    a rate above the highest leaning to pass that leans to neither side (no credit beyond
    it: a low-rate p99's samples run out some 20% below the capacity), and it draws a
    straight line where the share curve bends. A slow share that stays near its low-load
    level up to close to the knee and then shoots up (a 1.5 s model on 48 slots: 7.7% at
    80% of the capacity, 10% at it) crosses far to the right of the line from a pass at
    half the capacity to a fail above it: offline, that model's median point rose from
    -15% to -1% of the truth once the fit applied there too (`benchmarks/offline_zoo.py`).
    Where the line overshoots it falls short too (it read a p99's point off one short
    window near the knee): wherever there is a fit it sets the point (`point_estimate`).

    Only rates no step of which was overloaded are fitted: at and beyond the saturation
    every request is slow in the model and the measurements alike, and what an overloaded
    step counted depends on how long it ran.

    The fit needs no step that could not keep up (the correlation model does,
    `queue_shape`): without one the model saturates at the most answers any step got
    through, a lower bound, and the fitted rate scale makes up the difference. A 5%-slow
    server's ramp often fails at 0.94 of its saturation with every request answered; with
    no fit there its point was the line's, offline in 48 of 160 runs (14 in issue F's
    -10%..+3%, 11 over it); fitted, 26 in goal, 1 over (README, seventeenth session)."""
    low, high = navigation_bracket(rates, sla)
    if low is None or high is None:  # high, when there is one, lies above low
        return None
    shape = shape if shape is not None else queue_shape(steps, sla)
    if shape.saturation_rps is None:
        return None
    sketch = shape.service_sketch_ms or low_load_sketch(steps, shape.saturation_rps)[0]
    if not sketch:
        return None
    by_index = {step.index: step for step in steps}
    measured = []
    for rate in rates:
        slow, total = rate.evidence.test_counts
        if total > 0 and not any(overloaded(by_index[i]) for i in rate.steps):
            measured.append((rate.offered_rps, slow, total))
    fitted = fitted_crossing_rps(sketch, shape.saturation_rps, sla.latency_ms,
                                 sla.allowed_share, measured)
    if fitted is None:
        return None
    # The model knows slow requests only; the error-rate limit binds as in `best_estimate`:
    # never past a rate above the highest leaning to pass with too many errors, nor past
    # where the error rate crosses its limit between the two.
    caps = [fitted, ceiling_rps]
    caps += [r.offered_rps for r in rates if r.offered_rps > low.offered_rps
             and (lean(r, sla) is Verdict.FAIL
                  or r.evidence.slow_share > sla.allowed_share
                  or (sla.max_error_rate > 0 and r.evidence.error_rate > sla.max_error_rate))]
    error_crossing = _error_crossing(low, high, sla)
    if error_crossing is not None:
        caps.append(error_crossing)
    return min(caps)


def _through(steps: list[StepResult], default: float) -> float:
    """An overloaded step got through about the endpoint's saturation throughput, and a
    queue under Poisson arrivals cannot keep up at that rate, let alone above it."""
    through = [s.completed_rps for s in steps if s.verdict is Verdict.FAIL and overloaded(s)]
    return min(through, default=default)


# How the error of a run without a passing step begins (`estimate_capacity`).
NO_PASSING_STEP = "no load step showed the SLA"


def estimate_capacity(steps: list[StepResult], sla: Sla) -> CapacityEstimate:
    """Capacity from the pooled verdicts (the interval) and the best estimate inside it.

    The interval is [last pass, first fail]. The point estimate is `point_estimate`: the
    queue model fitted to every rate where there is a fit, else the slow share (or error
    rate) interpolated between the two rates around its limit; never past what an
    overloaded step got through, never below the last pass.
    """
    shape = queue_shape(steps, sla)
    rates = pool_by_rate(steps, sla, shape)
    last_pass, first_fail = bracket(rates)
    if last_pass is None:
        tried = ", ".join(f"{r.offered_rps:g} ({r.verdict})" for r in rates)
        raise NoPassingStepError(
            f"{NO_PASSING_STEP} (tried {tried or 'nothing'} rps): lower "
            "--start-rps, raise --max-test-seconds, relax the SLA, or check the endpoint's "
            "errors; nothing was applied")
    estimate = _estimate_from_bracket(steps, rates, sla, shape, last_pass, first_fail)
    if last_pass.pooled_up_to_rps is None:
        return estimate
    return replace(estimate, method=(
        f"{estimate.method}; the last pass shown with the requests of the rates up to "
        f"{last_pass.pooled_up_to_rps:g} rps, a slow share cannot fall as load rises"))


def _estimate_from_bracket(steps: list[StepResult], rates: list[RateEvidence], sla: Sla,
                           shape: QueueShape, last_pass: RateEvidence,
                           first_fail: RateEvidence | None) -> CapacityEstimate:
    """The estimate from the pooled verdicts' bracket, its method saying what set the
    point (`estimate_capacity` adds how the last pass was shown)."""
    lo = last_pass.offered_rps
    if first_fail is None:
        return CapacityEstimate(lo, lo, None, "highest passing rate (no failing load reached)")
    hi = first_fail.offered_rps
    point, fitted = point_estimate(steps, rates, sla, lo, shape) or (lo, False)
    if fitted:
        return CapacityEstimate(point, lo, hi, "queue model fitted to every rate, where its "
                                "slow share crosses the SLA (conservative end of the fit)",
                                ci_high_rps=hi)
    if point <= lo:
        return CapacityEstimate(lo, lo, hi, "highest passing rate (the slow share's crossing, "
                                "fitted or interpolated, lies at or below it)", ci_high_rps=hi)
    return CapacityEstimate(point, lo, hi, "slow share interpolated where it crosses the SLA",
                            ci_high_rps=hi)


def point_estimate(steps: list[StepResult], rates: list[RateEvidence], sla: Sla,
                   floor_rps: float = 0.0,
                   shape: QueueShape | None = None) -> tuple[float, bool] | None:
    """(The capacity's point estimate, whether the fitted queue model set it): the
    fitted crossing (`fitted_estimate`, its conservative end) wherever there is one, else
    the interpolated one (`best_estimate`); never past the first fail nor what an
    overloaded step got through, never below `floor_rps` (the last pass). None with
    nothing leaning to pass. The one point the report gives and the search plans its
    confirmation around.

    Why the fit wherever there is one, not only where it lies above the interpolation (as
    until the thirteenth session): the line reads two rates, the fit every rate's
    requests. Near a p99's knee the slow share of a window of seconds is skewed (at 1.05x
    the capacity of the zoo's p99 long tail the long-run share is 2.2%, the median 40 s
    window's 1.0%): the rate above the highest leaning to pass often looked sustainable,
    and the line through it put that case's point over issue F's +3% in 22 of 40 offline
    runs (median +3.7%); the fit, in 8 (median +0.2%). Nine zoo cases x 40 seeds: 254 ->
    271 of 360 runs within -10%..+3% (README). The search plans with this point too
    (`search._confirm`), so the change moved its steps as well as the points."""
    best = best_estimate(rates, sla)
    if best is None:
        return None
    _, first_fail = bracket(rates)
    hi = first_fail.offered_rps if first_fail is not None else math.inf
    ceiling = min(hi, _through(steps, hi))
    point = max(floor_rps, min(best, ceiling))
    fitted = fitted_estimate(steps, rates, sla, ceiling, shape)
    if fitted is not None:
        # Below the last pass the pass sets the point, not the fit.
        return max(fitted, floor_rps), fitted >= floor_rps
    return point, False


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


def step_generator_limit(meta: Mapping[str, Any], sla: Sla) -> str | None:
    """`generator_limit` over one step's recorded metadata (`loadtest.json`'s step_meta,
    as the controller writes it): the one reading the live run and the analysis share."""
    return generator_limit(meta.get("generator_cpu_percent", []),
                           meta.get("send_lag_p90_ms", []), sla,
                           meta.get("unsent_share", 0.0))


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
