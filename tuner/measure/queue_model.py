"""A queueing model fitted to a run's steps: the latency curve between and beyond them.

Pure (numpy/pandas, no I/O). The search measures a handful of loads; this module owns the
model that turns them into the SLA percentile as a function of arrival rate, with its
uncertainty, so that the report can show the capacity under Poisson and under even
arrivals and the latency expected at the target load, and `tuner simulate` can read each
minute's latency off the same curve (`latency_from_dict` on what result.json stores).

The model is an M/G/c queue: one FIFO queue in front of `c` identical slots
(`tuner.measure.queueing.fifo_sojourn_s`). No service-time law is assumed: it is the empirical
latency distribution of the lowest-load step, pooled with the next steps while they cannot
be told apart from it (so they are still essentially free of queueing): at low load a
request's latency is its service time, network overhead included. Only `c` (1..512) is
fitted: the slots whose replay of every step best reproduces its measured SLA percentile
(least squares on log latency). A step is replayed as it ran, with the run's arrival
process, from an idle queue through its warm-up and window, so an overloaded step's
growing queue is reproduced too; three replays per step, common random numbers across `c`.
A step's weight grows with its effective number of requests over the percentile (fewer
near saturation, where latencies come in clumps). Errors and timeouts count as slower than
any SLA.

Capacity is the highest mean arrival rate whose long-run SLA percentile meets the SLA (as
`tuner.measure.queueing.capacity_at_sla` defines it), under Poisson and under evenly spaced
arrivals. The uncertainty band is a bootstrap of the service sample (20 resamples, fresh
random numbers each): how much the curve and the capacity move with the finite sample the
service law was read from. It does not cover the uncertainty in `c`; when no step showed
queueing (`queueing_observed` false) `c` is only the fewest slots consistent with the data.
A small service sample of a heavy-tailed service under-represents its tail, which makes
the model optimistic: `fit_error` (RMS log ratio of model to measured percentiles) shows it.

Why Poisson is the basis: production traffic from many independent clients is Poisson-like,
and under it queues build long before saturation; evenly spaced arrivals are optimistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tuner.measure.queueing import fifo_sojourn_s

__all__ = [
    "ARRIVALS",
    "QueueModel",
    "StepSamples",
    "fit_queue_model",
    "latency_from_dict",
    "step_samples_from_frame",
]

ARRIVALS = ("poisson", "uniform")
MIN_STEPS = 2
MIN_SERVICE_REQUESTS = 50
BOOTSTRAP = 20
BAND = (2.5, 97.5)  # percentiles of the bootstrap: a 95% band
# Pool the next-lowest step into the service sample while its latencies cannot be told
# apart from the pool's, in the body (two-sample Kolmogorov-Smirnov at 5%) or in the tail
# (share above the pool's SLA percentile, one-sided two-proportion z-test at 5%): such
# steps are still essentially free of queueing.
KS_CRITICAL_5 = 1.358
Z_ONE_SIDED_5 = 1.645
# A step with e (effective) requests over its SLA percentile gets weight e / (e + 10).
WEIGHT_EXCEEDANCES = 10.0
BATCHES = 10
# Simulated requests per fit evaluation (all steps and replays together), with a floor
# per step and replay; a longer step is replayed in part: half warm-up, half window.
FIT_BUDGET = 60_000
FIT_STEP_FLOOR = 3_000
FIT_REPLICAS = 3
# Slots tried (1..512) before refining between the best one's neighbours (ratio <= 1.25).
SLOT_GRID = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80,
             96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512)
# Fewer slots are preferred while the fit's weighted mean squared log error is within this
# of the best: data that never approach saturation bound c only from below.
SLOT_TOLERANCE = 0.002
# The curve's utilisation grid (share of the slots' saturation rate); rate 0 is the
# service sample itself.
UTILISATION_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.76, 0.82, 0.86, 0.9, 0.93,
                    0.95, 0.97, 0.985)
# Near saturation a queue takes long to forget its idle start: simulate up to this many
# times more requests there ((0.2 / (1 - utilisation))^2, capped).
LONG_RUN_FACTOR = 5
LANE_BISECTION_STEPS = 5  # a bootstrap resample's capacity, within +-30% of the estimate
# The capacity is refined with this many simulated requests per rate, REFINE_STEPS times.
CAPACITY_REQUESTS = 100_000
REFINE_STEPS = 2
BAND_RATES = 6  # rates the bootstrap simulates the band at
# The ceiling latencies are clipped to (errors take it): at least this many SLAs.
CEILING_SLAS = 10.0
# Queueing counts as observed when some step's SLA percentile is this many times the
# service sample's: otherwise `c` is only a lower bound.
QUEUEING_SEEN = 1.25
# Slot counts whose likelihood is at least this share of the best one's are plausible and
# share the bootstrap band's resamples; residual variance is taken as at least SCORE_FLOOR
# (about 10% error on a log scale: a measured percentile's own noise).
PLAUSIBLE_SHARE = 0.1
SCORE_FLOOR = 0.01


@dataclass(frozen=True, eq=False)
class StepSamples:
    """The requests *sent* in one step's measurement window, in send order.

    `window_s` and `warmup_s` let the fit replay the step as it ran (from an idle queue,
    warm-up first); without them the window is taken as requests / offered rate.
    """

    offered_rps: float
    latency_ms: np.ndarray
    ok: np.ndarray
    window_s: float | None = None
    warmup_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latency_ms)


def step_samples_from_frame(specs, samples: pd.DataFrame) -> list[StepSamples]:
    """Window requests of each step from `tuner.measure.analysis.StepSpec`s and a samples frame with
    columns step, intended_s, completed_s, latency_ms, ok (a request belongs to the window
    when warmup_s <= intended_s < duration_s). Steps without window requests are left out."""
    groups = dict(tuple(samples.groupby("step"))) if len(samples) else {}
    out = []
    for spec in specs:
        frame = groups.get(spec.index)
        if frame is None:
            continue
        intended = frame["intended_s"].to_numpy(dtype=float)
        inside = (intended >= spec.warmup_s) & (intended < spec.duration_s)
        if not inside.any():
            continue
        order = np.argsort(intended[inside], kind="stable")
        out.append(StepSamples(
            offered_rps=float(spec.offered_rps),
            latency_ms=frame["latency_ms"].to_numpy(dtype=float)[inside][order],
            ok=frame["ok"].to_numpy(dtype=bool)[inside][order],
            window_s=max(0.0, float(spec.duration_s) - float(spec.warmup_s)),
            warmup_s=float(spec.warmup_s)))
    return out


def _clipped(latency_ms: np.ndarray, ok: np.ndarray, ceiling_ms: float) -> np.ndarray:
    """Latencies with errors counted as the ceiling (slower than any SLA)."""
    good = np.asarray(ok, dtype=bool) & np.isfinite(latency_ms)
    return np.where(good, np.minimum(latency_ms, ceiling_ms), ceiling_ms)


def _distinguishable(a: np.ndarray, b: np.ndarray) -> bool:
    """Two-sample Kolmogorov-Smirnov test at 5% (asymptotic critical value)."""
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    gap = np.max(np.abs(np.searchsorted(a, points, side="right") / len(a)
                        - np.searchsorted(b, points, side="right") / len(b)))
    return bool(gap > KS_CRITICAL_5 * math.sqrt((len(a) + len(b)) / (len(a) * len(b))))


def _effective_requests(values: np.ndarray, percentile: float) -> float:
    """Requests' worth of independent information about the percentile: near saturation
    consecutive latencies move together (busy periods), so a step's exceedances of its
    percentile come in clumps. Batch means: the variance of the exceedance share over
    BATCHES consecutive batches against the binomial variance."""
    n = len(values)
    if n < 10 * BATCHES:
        return float(n)
    over = values > np.percentile(values, percentile)
    share = over.mean()
    if share in (0.0, 1.0):
        return float(n)
    batches = np.array([b.mean() for b in np.array_split(over, BATCHES)])
    observed = batches.var(ddof=1)
    binomial = share * (1 - share) / (n / BATCHES)
    return float(n) if observed <= binomial else n * binomial / observed


def _tail_heavier(pooled: np.ndarray, values: np.ndarray, percentile: float) -> bool:
    """Whether `values` exceed the pool's SLA percentile significantly more often than the
    pool does (one-sided two-proportion z-test at 5%)."""
    threshold = np.percentile(pooled, percentile)
    p1, p2 = float(np.mean(pooled > threshold)), float(np.mean(values > threshold))
    n1, n2 = len(pooled), len(values)
    share = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(max(share * (1 - share), 1e-12) * (1 / n1 + 1 / n2))
    return (p2 - p1) / spread > Z_ONE_SIDED_5


def _percentile(values: np.ndarray, percentile: float) -> float:
    return float(np.percentile(values, percentile)) if len(values) else math.nan


def _times(unit: np.ndarray, rate: float, arrivals: str) -> np.ndarray:
    """Arrival times at `rate` from rate-free draws: for Poisson the cumulative sum of unit
    exponential gaps, for even arrivals a phase in [0, 1) (common random numbers: the same
    draws at every rate, so the simulated percentile is monotone in the rate)."""
    if arrivals == "poisson":
        return unit / rate
    return (np.arange(len(unit)) + unit[0]) / rate


def _unit_draws(rng: np.random.Generator, count: int, arrivals: str) -> np.ndarray:
    if arrivals == "poisson":
        return np.cumsum(rng.exponential(1.0, count))
    return np.full(count, rng.random())


@dataclass
class _Lane:
    """Common random numbers for simulating one service sample at many rates: `requests`
    at low load, a prefix of up to LONG_RUN_FACTOR times that near saturation."""

    unit: np.ndarray
    index: np.ndarray  # into the service sample
    requests: int


def _lane(arrival_rng: np.random.Generator, index_rng: np.random.Generator, requests: int,
          sample_size: int, arrivals: str, long_runs: bool) -> _Lane:
    most = requests * (LONG_RUN_FACTOR if long_runs else 1)
    return _Lane(_unit_draws(arrival_rng, most, arrivals),
                 index_rng.integers(0, sample_size, most), requests)


def _stationary_ms(rate: float, utilisation: float, service_s: np.ndarray, bad: np.ndarray,
                   ceiling_ms: float, lane: _Lane, slots: int, percentile: float,
                   arrivals: str) -> float:
    """Long-run SLA percentile (ms) at a mean arrival rate: the first 10% of requests, the
    queue filling up from idle, left out; errors count as the ceiling."""
    longer = min(LONG_RUN_FACTOR, max(1.0, (0.2 / max(1e-9, 1 - utilisation)) ** 2))
    count = int(lane.requests * longer)
    index = lane.index[:count]
    service = service_s[index]
    if rate <= 0:
        sojourn_ms = service * 1000.0
    else:
        sojourn_ms = fifo_sojourn_s(_times(lane.unit[:count], rate, arrivals), service,
                                    slots) * 1000.0
    values = np.where(bad[index], ceiling_ms, np.minimum(sojourn_ms, ceiling_ms))
    return _percentile(values[len(values) // 10:], percentile)


@dataclass
class _FitStep:
    rate: float
    warmup_s: float
    duration_s: float
    measured_ms: float
    weight: float
    requests: int
    replicas: list[tuple[np.ndarray, np.ndarray]]  # (arrival times, service draws) each


def _fit_steps(steps: list[StepSamples], sample_size: int, percentile: float,
               ceiling_ms: float, arrivals: str, rng: np.random.Generator) -> list[_FitStep]:
    cap = max(FIT_STEP_FLOOR, FIT_BUDGET // (FIT_REPLICAS * max(1, len(steps))))
    out = []
    for step in steps:
        rate = float(step.offered_rps)
        window = step.window_s if step.window_s else step.requests / rate
        warmup = float(step.warmup_s)
        values = _clipped(step.latency_ms, step.ok, ceiling_ms)
        if rate * (warmup + window) > cap:  # replay the window's first part only
            warmup = min(warmup, 0.5 * cap / rate)
            shortened = cap / rate - warmup
            keep = max(1, round(len(values) * shortened / window))
            values, window = values[:keep], shortened
        duration = warmup + window
        expected = rate * duration
        count = int(expected + 6 * math.sqrt(expected) + 16)
        replicas = []
        for _ in range(FIT_REPLICAS):
            times = _times(_unit_draws(rng, count, arrivals), rate, arrivals)
            times = times[times < duration]
            replicas.append((times, rng.integers(0, sample_size, len(times))))
        exceeding = _effective_requests(values, percentile) * (1 - percentile / 100.0)
        out.append(_FitStep(rate, warmup, duration, _percentile(values, percentile),
                            exceeding / (exceeding + WEIGHT_EXCEEDANCES), len(values),
                            replicas))
    return out


def _step_model_ms(step: _FitStep, service_s: np.ndarray, bad: np.ndarray, slots: int,
                   percentile: float, ceiling_ms: float, replays: int) -> float:
    """The step's SLA percentile as the model expects it: the step replayed from an idle
    queue `replays` times (geometric mean: one replay near saturation is as noisy as the
    measurement itself)."""
    logs = []
    for times, index in step.replicas[:replays]:
        sojourn = fifo_sojourn_s(times, service_s[index], slots) * 1000.0
        values = np.where(bad[index], ceiling_ms, np.minimum(sojourn, ceiling_ms))
        values = values[times >= step.warmup_s]
        if len(values):
            logs.append(math.log(max(_percentile(values, percentile), 1e-9)))
    return math.exp(sum(logs) / len(logs)) if logs else math.nan


def _objective(model_ms: np.ndarray, measured_ms: np.ndarray, weights: np.ndarray) -> float:
    usable = np.isfinite(model_ms) & np.isfinite(measured_ms)
    error = np.log(model_ms[usable]) - np.log(measured_ms[usable])
    return float(np.sum(weights[usable] * error ** 2) / max(np.sum(weights[usable]), 1e-12))


def _choose_slots(evaluate) -> tuple[int, dict[int, float]]:
    """A scan over SLOT_GRID with one replay per step (stopping once every step's model is
    at or below its measure: more slots only lower the model further), then, with every
    replay, each integer between the best grid point's neighbours (a golden-section search
    when they are far apart); the fewest slots within SLOT_TOLERANCE of the best score.

    `evaluate(c, replays)` -> (score, every step's model at or below its measure). Returns
    the slots and the score of every slot count tried with every replay."""
    scan: dict[int, float] = {}
    for c in SLOT_GRID:
        scan[c], below = evaluate(c, 1)
        if below:
            break
    tried = sorted(scan)
    best = min(tried, key=lambda c: (scan[c], c))
    position = tried.index(best)
    low = tried[position - 1] if position > 0 else best
    high = tried[position + 1] if position + 1 < len(tried) else best
    scores: dict[int, float] = {}

    def score(c: int) -> float:
        if c not in scores:
            scores[c] = evaluate(c, FIT_REPLICAS)[0]
        return scores[c]

    while high - low > 12:  # golden section on integers
        m1, m2 = low + round((high - low) * 0.382), low + round((high - low) * 0.618)
        if score(m1) <= score(m2):
            high = m2
        else:
            low = m1
    for c in range(low, high + 1):
        score(c)
    floor = min(scores.values())
    return min(c for c, s in scores.items() if s <= floor + SLOT_TOLERANCE), scores


def _plausible_slots(scores: dict[int, float], best: int,
                     total_weight: float) -> tuple[tuple[int, float], ...]:
    """Slot counts the data do not rule out, with relative weights: a Gaussian likelihood
    of the log residuals, their variance taken from the best fit (at least SCORE_FLOOR),
    exp(-W/2 x (S(c) - S(best)) / S(best)) with W the steps' total weight. Counts below
    PLAUSIBLE_SHARE of the best one's weight are dropped."""
    floor = max(scores[best], SCORE_FLOOR)
    weights = {c: math.exp(-total_weight / 2 * max(0.0, s - scores[best]) / floor)
               for c, s in scores.items()}
    kept = {c: w for c, w in weights.items() if w >= PLAUSIBLE_SHARE}
    total = sum(kept.values())
    return tuple((c, w / total) for c, w in sorted(kept.items()))


@dataclass(eq=False)
class _Curve:
    """A percentile curve on a model's rate grid; the band is filled in when first asked."""

    rates: np.ndarray
    median_ms: np.ndarray
    capacity_rps: float
    low_ms: np.ndarray | None = None
    high_ms: np.ndarray | None = None
    capacity_band: tuple[float, float] | None = None


@dataclass(frozen=True, eq=False)
class QueueModel:
    """An M/G/c model fitted to a run: `slots` slots, the service sample, the curves.

    Rates are for the endpoint as tested (all `instances_under_test` together), like the
    steps it was fitted to: a per-instance rate is rate / instances under test. Curves are
    computed once per arrival process and kept.
    """

    slots: int
    plausible_slots: tuple[tuple[int, float], ...]  # (slots, weight): what the band covers
    percentile: float
    sla_ms: float
    measured_arrivals: str
    service_ms: np.ndarray = field(repr=False)
    service_ok: np.ndarray = field(repr=False)
    service_steps: tuple[float, ...]
    ceiling_ms: float
    fit_error: float
    fit_points: tuple[tuple[float, float, float, int], ...]  # rps, measured, model, requests
    queueing_observed: bool
    seed: int = 0
    _curves: dict[str, _Curve] = field(repr=False, default_factory=dict)

    # -- the service sample -------------------------------------------------------------
    @property
    def service_mean_ms(self) -> float:
        return float(np.mean(self.service_ms))

    @property
    def service_p50_ms(self) -> float:
        return _percentile(self.service_ms, 50)

    @property
    def service_p99_ms(self) -> float:
        return _percentile(self.service_ms, 99)

    @property
    def saturation_rps(self) -> float:
        """Throughput of all slots busy: no mean arrival rate above it can be sustained."""
        return self.slots * 1000.0 / max(self.service_mean_ms, 1e-9)

    # -- curves --------------------------------------------------------------------------
    def default_rates(self) -> np.ndarray:
        """The curve's rates: UTILISATION_GRID x the saturation rate."""
        return np.asarray(UTILISATION_GRID) * self.saturation_rps

    def _curve(self, arrivals: str, band: bool) -> _Curve:
        _check_arrivals(arrivals)
        curve = self._curves.get(arrivals)
        if curve is None:
            curve = self._curves[arrivals] = _median_curve(self, self.default_rates(),
                                                           arrivals)
        if band and curve.low_ms is None:
            curve.low_ms, curve.high_ms, curve.capacity_band = _band(
                self, curve.rates, curve.median_ms, curve.capacity_rps, arrivals)
        return curve

    def percentile_curve(self, rates, arrivals: str = "poisson"
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median, low, high) SLA-percentile latency in ms at each mean arrival rate: the
        model on the whole service sample, and a 95% band from bootstrap resamples of it
        (each with one of the plausible slot counts). Values are clipped to `ceiling_ms`.
        The default rates are precomputed; others are simulated (about 0.1-0.5 s)."""
        _check_arrivals(arrivals)
        rates = np.asarray(rates, dtype=float)
        if np.array_equal(rates, self.default_rates()):
            curve = self._curve(arrivals, band=True)
            return curve.median_ms.copy(), curve.low_ms.copy(), curve.high_ms.copy()
        curve = _median_curve(self, rates, arrivals, capacity=False)
        low, high, _ = _band(self, rates, curve.median_ms, math.nan, arrivals)
        return curve.median_ms, low, high

    def capacity_rps(self, arrivals: str = "poisson") -> tuple[float, tuple[float, float]]:
        """Highest mean arrival rate whose SLA percentile meets the SLA, with a 95% band."""
        curve = self._curve(arrivals, band=True)
        return curve.capacity_rps, curve.capacity_band

    def latency_at(self, rate_rps: float, arrivals: str = "poisson") -> float:
        """SLA-percentile latency (ms) at a mean arrival rate, read off the precomputed curve
        (log-linear interpolation); infinite beyond the curve's last point (98.5% of the
        saturation rate). Cheap (microseconds): call it for every simulated minute."""
        curve = self._curve(arrivals, band=False)
        return _interpolate(curve.rates, curve.median_ms, rate_rps)

    def to_dict(self) -> dict:
        """JSON-ready summary (rates in requests/s for the endpoint as tested). The Poisson
        curve carries its band; the even-arrivals curve only its median."""
        poisson = self._curve("poisson", band=True)
        uniform = self._curve("uniform", band=False)
        return {
            "model": "M/G/c",
            "slots": self.slots,
            "slots_range": [self.plausible_slots[0][0], self.plausible_slots[-1][0]],
            "percentile": self.percentile,
            "sla_ms": self.sla_ms,
            "measured_arrivals": self.measured_arrivals,
            "service_mean_ms": _round(self.service_mean_ms),
            "service_p50_ms": _round(self.service_p50_ms),
            "service_p99_ms": _round(self.service_p99_ms),
            "service_requests": int(len(self.service_ms)),
            "service_steps_rps": [_round(r) for r in self.service_steps],
            "saturation_rps": _round(self.saturation_rps),
            "poisson_capacity_rps": _round(poisson.capacity_rps),
            # Without observed queueing the slot count, so the capacity, is only a lower
            # bound: the band is then open above.
            "poisson_capacity_band": [_round(poisson.capacity_band[0]),
                                      _round(poisson.capacity_band[1])
                                      if self.queueing_observed else None],
            "uniform_capacity_rps": _round(uniform.capacity_rps),
            "fit_error": _round(self.fit_error),
            "queueing_observed": self.queueing_observed,
            "ceiling_ms": _round(self.ceiling_ms),
            "fit": [{"offered_rps": _round(r), "measured_ms": _round(m), "model_ms": _round(p),
                     "requests": n} for r, m, p, n in self.fit_points],
            "curve": [{"rps": _round(r), "p_ms": _round(m), "low_ms": _round(lo),
                       "high_ms": _round(hi)}
                      for r, m, lo, hi in zip(poisson.rates, poisson.median_ms, poisson.low_ms,
                                              poisson.high_ms, strict=True)],
            "uniform_curve": [{"rps": _round(r), "p_ms": _round(m)}
                              for r, m in zip(uniform.rates, uniform.median_ms, strict=True)],
        }


def _round(value: float, digits: int = 4) -> float | None:
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _check_arrivals(arrivals: str) -> None:
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {', '.join(ARRIVALS)}, not {arrivals!r}")


def _interpolate(rates: np.ndarray, values_ms: np.ndarray, rate: float) -> float:
    if not math.isfinite(rate) or rate > rates[-1]:
        return math.inf
    if rate <= rates[0]:
        return float(values_ms[0])
    return float(np.exp(np.interp(rate, rates, np.log(np.maximum(values_ms, 1e-9)))))


def latency_from_dict(model: dict, rate_rps: float, arrivals: str = "poisson",
                      key: str = "p_ms") -> float:
    """`QueueModel.latency_at` from its `to_dict()` output (what result.json stores): the
    SLA-percentile latency in ms at a mean arrival rate for the endpoint as tested; `key`
    "low_ms" or "high_ms" reads the Poisson curve's band instead."""
    _check_arrivals(arrivals)
    points = model["curve" if arrivals == "poisson" else "uniform_curve"]
    rates = np.array([p["rps"] for p in points], dtype=float)
    values = np.array([p[key] if p.get(key) is not None else math.inf for p in points],
                      dtype=float)
    return _interpolate(rates, values, rate_rps)


def _request_counts(percentile: float) -> tuple[int, int]:
    """Simulated requests per rate: for the median curve, and for each bootstrap lane."""
    tail = max(1e-4, 1 - percentile / 100.0)
    return (int(min(15_000, max(5_000, 60 / tail))), int(min(3_000, max(1_500, 20 / tail))))


def _capacity(at_rate, sla_ms: float, low: float, high: float, steps: int) -> float:
    """Bisection for the highest rate meeting the SLA between `low` (meets it) and `high`."""
    for _ in range(steps):
        middle = (low + high) / 2
        if at_rate(middle) <= sla_ms:
            low = middle
        else:
            high = middle
    return low


def _simulator(model: QueueModel, lane_number: int, arrivals: str, requests: int,
               long_runs: bool, slots: int | None = None):
    """rate -> stationary SLA percentile: lane 0 simulates the service sample, lane b > 0
    the b-th bootstrap resample of it. Common random numbers at every rate, and the same
    service draws under either arrival process."""
    service_rng = np.random.default_rng(np.random.SeedSequence([model.seed, 0, lane_number]))
    arrival_rng = np.random.default_rng(
        np.random.SeedSequence([model.seed, 1 + ARRIVALS.index(arrivals), lane_number]))
    service_s, bad = model.service_ms / 1000.0, ~model.service_ok
    if lane_number:
        pick = service_rng.integers(0, len(service_s), len(service_s))
        service_s, bad = service_s[pick], bad[pick]
    lane = _lane(arrival_rng, service_rng, requests, len(service_s), arrivals, long_runs)
    slots = slots or model.slots
    top = slots / max(float(np.mean(service_s)), 1e-12)  # the sample's saturation

    def at(rate: float) -> float:
        return _stationary_ms(rate, rate / top, service_s, bad, model.ceiling_ms, lane,
                              slots, model.percentile, arrivals)

    return at, top


def _median_curve(model: QueueModel, rates: np.ndarray, arrivals: str,
                  capacity: bool = True) -> _Curve:
    """The model's percentile at `rates` and (on the default grid) its capacity."""
    at, _ = _simulator(model, 0, arrivals, _request_counts(model.percentile)[0],
                       long_runs=True)
    median = np.array([at(r) for r in rates])
    found = math.nan
    if capacity:  # where the curve crosses the SLA, then long runs there
        meets = median <= model.sla_ms
        if not meets[0]:
            found = 0.0
        elif meets.all():
            found = _refine_capacity(model, arrivals, float(rates[-1]))
        else:
            i = int(np.argmin(meets))
            below, above = math.log(max(median[i - 1], 1e-9)), math.log(median[i])
            share = (math.log(model.sla_ms) - below) / (above - below)
            found = _refine_capacity(model, arrivals,
                                     float(rates[i - 1] + share * (rates[i] - rates[i - 1])))
    return _Curve(rates, median, found)


def _refine_capacity(model: QueueModel, arrivals: str, estimate: float) -> float:
    """The capacity again with CAPACITY_REQUESTS per rate: a percentile near saturation
    needs long runs. Regula falsi (Illinois) on log latency, from a bracket around the
    short runs' estimate; the highest rate found to meet the SLA."""
    at, top = _simulator(model, 0, arrivals, CAPACITY_REQUESTS, long_runs=False)
    limit = 0.999 * top

    def gap(rate: float) -> float:
        return math.log(max(at(rate), 1e-9)) - math.log(model.sla_ms)

    low, high = min(0.95 * estimate, limit), min(1.04 * estimate, limit)
    g_low = gap(low)
    while g_low > 0:  # the long runs are slower: move down
        if low < 0.02 * top:
            return 0.0
        high, low = low, 0.85 * low
        g_low = gap(low)
    g_high = gap(high) if high > low else g_low
    while g_high <= 0:  # faster: move up
        if high >= limit:
            return high
        low, g_low, high = high, g_high, min(1.08 * high, limit)
        g_high = gap(high)
    side = 0
    for _ in range(REFINE_STEPS):
        rate = (low * g_high - high * g_low) / (g_high - g_low)
        g_rate = gap(rate)
        if g_rate <= 0:
            low, g_low = rate, g_rate
            if side < 0:
                g_high /= 2
            side = -1
        else:
            high, g_high = rate, g_rate
            if side > 0:
                g_low /= 2
            side = 1
    return low


def _lane_slots(plausible: tuple[tuple[int, float], ...], lane: int) -> int:
    """Resample `lane`'s slot count: the plausible counts in proportion to their weights
    (stratified: lane b takes the (b - 1/2)/BOOTSTRAP quantile)."""
    point = (lane - 0.5) / BOOTSTRAP
    total = 0.0
    for slots, weight in plausible:
        total += weight
        if point <= total:
            return slots
    return plausible[-1][0]


def _band(model: QueueModel, rates: np.ndarray, median: np.ndarray, capacity: float,
          arrivals: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float] | None]:
    """95% bootstrap band of the curve at `rates` (simulated at up to BAND_RATES of them,
    log offsets interpolated between) and of the capacity when one is given: each resample
    of the service sample runs with one of the plausible slot counts.

    Each resample of the service sample is simulated with fewer requests than the median
    curve (and no longer near saturation), so the band is centred on the median *of the
    resamples*: shorter runs' bias at high load does not shift it."""
    requests = _request_counts(model.percentile)[1]
    coarse = np.unique(np.linspace(0, len(rates) - 1, min(len(rates), BAND_RATES))
                       .round().astype(int))
    sla = model.sla_ms
    values, capacities = [], []
    for lane in range(1, BOOTSTRAP + 1):
        at, top = _simulator(model, lane, arrivals, requests, long_runs=False,
                             slots=_lane_slots(model.plausible_slots, lane))
        values.append([at(rates[i]) for i in coarse])
        if math.isfinite(capacity) and capacity > 0:
            low, high = 0.7 * capacity, min(1.3 * capacity, top)
            if at(low) > sla:
                low = 0.0
            if at(high) <= sla:
                low, high = high, top
            capacities.append(_capacity(at, sla, low, high, LANE_BISECTION_STEPS))
    logs = np.log(np.maximum(np.array(values), 1e-9))
    centre = np.median(logs, axis=0)
    index = np.arange(len(rates))
    low_ms = median * np.exp(np.interp(index, coarse, np.percentile(logs, BAND[0], axis=0)
                                       - centre))
    high_ms = median * np.exp(np.interp(index, coarse, np.percentile(logs, BAND[1], axis=0)
                                        - centre))
    low_ms = np.minimum(low_ms, median)
    high_ms = np.minimum(np.maximum(high_ms, median), model.ceiling_ms)
    band = None
    if capacities:
        lo, mid, hi = np.percentile(capacities, [BAND[0], 50, BAND[1]])
        if mid > 0:  # centred on the resamples' median, scaled to the estimate
            lo, hi = capacity * lo / mid, capacity * hi / mid
        band = (float(min(capacity, lo)), float(max(capacity, hi)))
    elif math.isfinite(capacity):
        band = (capacity, capacity)
    return low_ms, high_ms, band


def fit_queue_model(steps: list[StepSamples], percentile: float, sla_ms: float, seed: int = 0,
                    measured_arrivals: str = "poisson") -> QueueModel | None:
    """Fit an M/G/c model to a run's steps; None with too little data.

    `measured_arrivals` is how the run spaced its requests ("poisson" or "uniform": the
    run's `search.arrivals`): each step is replayed that way. None when fewer than 2 steps
    have requests, fewer than 50 requests were measured at low load, or errors at low load
    alone already break the SLA percentile.
    """
    _check_arrivals(measured_arrivals)
    if not 0 < percentile < 100:
        raise ValueError(f"percentile {percentile} must be in (0, 100)")
    if not (math.isfinite(sla_ms) and sla_ms > 0):
        raise ValueError(f"SLA {sla_ms} ms must be a positive number")
    steps = sorted((s for s in steps if s.requests > 0 and s.offered_rps > 0),
                   key=lambda s: s.offered_rps)
    if len(steps) < MIN_STEPS:
        return None
    finite = [float(np.max(s.latency_ms[np.isfinite(s.latency_ms)], initial=0.0))
              for s in steps]
    ceiling = max(CEILING_SLAS * sla_ms, max(finite))

    pool = [steps[0]]
    for step in steps[1:]:
        values = _clipped(step.latency_ms, step.ok, ceiling)
        pooled = _clipped(np.concatenate([s.latency_ms for s in pool]),
                          np.concatenate([s.ok for s in pool]), ceiling)
        if _distinguishable(pooled, values) or _tail_heavier(pooled, values, percentile):
            break
        pool.append(step)
    service_ms = np.concatenate([s.latency_ms for s in pool]).astype(float)
    service_ok = np.concatenate([s.ok for s in pool]).astype(bool)
    service_ok &= np.isfinite(service_ms)
    service_ms = np.where(np.isfinite(service_ms), service_ms, ceiling)
    if len(service_ms) < MIN_SERVICE_REQUESTS:
        return None
    if 1.0 - service_ok.mean() >= 1 - percentile / 100.0:
        return None

    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    fit_steps = _fit_steps(steps, len(service_ms), percentile, ceiling, measured_arrivals, rng)
    measured = np.array([s.measured_ms for s in fit_steps])
    weights = np.array([s.weight for s in fit_steps])
    service_s = service_ms / 1000.0
    bad = ~service_ok
    models: dict[int, np.ndarray] = {}

    def evaluate(c: int, replays: int) -> tuple[float, bool]:
        model = np.array([_step_model_ms(s, service_s, bad, c, percentile, ceiling, replays)
                          for s in fit_steps])
        if replays == FIT_REPLICAS:
            models[c] = model
        usable = np.isfinite(model)
        return _objective(model, measured, weights), bool(np.all(
            model[usable] <= measured[usable]))

    slots, scores = _choose_slots(evaluate)
    plausible = _plausible_slots(scores, slots, float(np.sum(weights)))
    model_ms = models[slots]
    usable = np.isfinite(model_ms) & np.isfinite(measured)
    fit_error = float(np.sqrt(np.mean((np.log(model_ms[usable]) - np.log(measured[usable]))
                                      ** 2))) if usable.any() else math.nan
    service_pct = _percentile(_clipped(service_ms, service_ok, ceiling), percentile)
    queueing = bool(np.nanmax(measured) >= QUEUEING_SEEN * service_pct)
    model = QueueModel(
        slots=slots, plausible_slots=plausible, percentile=float(percentile),
        sla_ms=float(sla_ms),
        measured_arrivals=measured_arrivals, service_ms=service_ms, service_ok=service_ok,
        service_steps=tuple(float(s.offered_rps) for s in pool), ceiling_ms=ceiling,
        fit_error=fit_error,
        fit_points=tuple((s.rate, float(m), float(p), s.requests)
                         for s, m, p in zip(fit_steps, measured, model_ms, strict=True)),
        queueing_observed=queueing, seed=seed)
    model._curve("poisson", band=True)
    model._curve("uniform", band=False)
    return model
