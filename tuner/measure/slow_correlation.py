"""How correlated a queue's slow requests are: the variance the binomial tests must allow.

Pure (numpy). A step's verdict tests its count of slow requests (slower than the SLA) as if
each were an independent coin; requests that queue behind each other are not, so the
count varies more than a binomial one and the tests count *effective* requests (raw ÷
this correlation). Getting the factor right decides both failure modes: too small and
passes are claimed that do not hold (the target's basis above the truth), too large and
no affordable test can pass, leaving capacity badly under-measured.

Why a simulation rather than a formula: a slow request is slow either because its own
service was (independent of its neighbours: a 5% share of cache misses, a lognormal tail
past a p99 SLA, a 1.5 s model near a 2.2 s SLA) or because it queued (correlated for as
long as the backlog lasts). A heavy-traffic formula (relaxation time x rate) treats all of
them as queueing and over-counts 5-30x on many-slot servers and p99 tails, while slow
*services* that make others queue (bimodal) correlate more than the share of queue-caused
slowness suggests. Replaying the queue the steps show answers both: an M/G/c queue fed
the measured low-load latencies (`latency_sketch`, the service law) with the slots
nearest the throughput seen (`slots_for`), its service times scaled so that the queue
saturates exactly at that throughput (a lower bound on the endpoint's: more queueing than
it may have), under Poisson arrivals; and the variance of its slow counts over windows as
long as a step's, against the binomial's, averaged over the sketch and bootstrap
resamples of the answers the law was read from (a rare slow kind of request is known only
roughly, and each simulation's variance is itself noisy: the mean pools both).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from tuner.measure.queueing import fifo_sojourn_s

__all__ = [
    "CORRELATION_WINDOW_S",
    "SKETCH_PROBABILITIES",
    "latency_sketch",
    "merge_sketches",
    "model_queue",
    "simulated_correlation",
    "simulated_slow_share",
    "slots_for",
]

# The probabilities at which a step keeps its good latencies' quantiles: a sketch of the
# service law when the step's load is low, denser in the tail SLA percentiles read.
SKETCH_PROBABILITIES: tuple[float, ...] = tuple(float(p) for p in np.round(np.concatenate([
    np.arange(0.005, 0.9, 0.01),
    np.arange(0.9, 0.99, 0.0025),
    np.arange(0.99, 0.9996, 0.0005),
]), 5))
# The share of probability each sketch point stands for (half-way to its neighbours).
_EDGES = np.concatenate([[0.0], np.diff(SKETCH_PROBABILITIES) / 2 + SKETCH_PROBABILITIES[:-1],
                         [1.0]])
_POINT_SHARES = np.diff(_EDGES)
# Fewer good answers than this leave a step without a sketch.
MIN_SKETCH_SAMPLES = 30
# The simulated windows: as long as a typical measured step, this many of them.
CORRELATION_WINDOW_S = 20.0
MIN_WINDOW_REQUESTS = 50
# At high rates a window is capped (7 s at 700 rps: bursts near a p99's knee last
# seconds, so shorter windows would miss their variance) and at least MIN_WINDOWS are
# simulated; at low rates SIMULATED_REQUESTS make many windows.
MAX_WINDOW_REQUESTS = 5_000
MIN_WINDOWS = 40
SIMULATED_REQUESTS = 60_000
# The sketch and this many less one bootstrap resamples of the answers it stands for (at
# most MAX_RESAMPLED): the mean of their ratios is the estimate.
RESAMPLES = 4
MAX_RESAMPLED = 5_000
SIMULATION_SEED = 20261130
MAX_SLOTS = 512


def latency_sketch(latency_ms: np.ndarray) -> tuple[float, ...]:
    """The quantiles of these latencies at `SKETCH_PROBABILITIES` (empty: too few)."""
    values = np.asarray(latency_ms, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < MIN_SKETCH_SAMPLES:
        return ()
    return tuple(round(float(v), 3) for v in np.quantile(values, SKETCH_PROBABILITIES))


def merge_sketches(sketches: list[tuple[tuple[float, ...], int]]) -> tuple[float, ...]:
    """One sketch of several (sketch, sample count) pairs: the weighted mixture's quantiles
    at `SKETCH_PROBABILITIES` (each point stands for its share of probability: the
    sketch is denser in the tail)."""
    parts = [(np.asarray(sketch, dtype=float), count) for sketch, count in sketches
             if sketch and count > 0]
    if not parts:
        return ()
    if len(parts) == 1:
        return tuple(float(v) for v in parts[0][0])
    values = np.concatenate([sketch for sketch, _ in parts])
    weights = np.concatenate([_POINT_SHARES * count for _, count in parts])
    order = np.argsort(values, kind="stable")
    cumulative = (np.cumsum(weights[order]) - weights[order] / 2) / weights.sum()
    merged = np.interp(SKETCH_PROBABILITIES, cumulative, values[order])
    return tuple(round(float(v), 3) for v in merged)


def slots_for(saturation_rps: float, sketch_ms: tuple[float, ...]) -> int:
    """The slots nearest to serving `saturation_rps` with this service law (Little's law:
    busy slots = throughput x mean service time), between 1 and `MAX_SLOTS`. Rounded, not
    raised: the mean of a low-load sample is itself uncertain by several percent."""
    mean_s = _mean_ms(sketch_ms) / 1000.0
    return int(min(MAX_SLOTS, max(1, round(saturation_rps * mean_s))))


def model_queue(saturation_rps: float, sketch_ms: tuple[float, ...]) -> tuple[int, float]:
    """(slots, service-time scale) of the model queue: `slots_for` slots, the sketch's
    service times multiplied by the scale so that it saturates exactly at
    `saturation_rps` (the slots are rounded; the scale makes up the difference)."""
    slots = slots_for(saturation_rps, sketch_ms)
    return slots, slots / (saturation_rps * _mean_ms(sketch_ms) / 1000.0)


def _mean_ms(sketch_ms: tuple[float, ...]) -> float:
    probabilities = np.array((0.0, *SKETCH_PROBABILITIES, 1.0))
    values = np.array((sketch_ms[0], *sketch_ms, sketch_ms[-1]))
    return float(np.trapezoid(values, probabilities))


def simulated_correlation(rate_rps: float, sketch_ms: tuple[float, ...], samples: int,
                          saturation_rps: float, sla_ms: float) -> float:
    """Raw slow requests per independent one (>= 1) at a Poisson rate, for the queue that
    serves this law and saturates at `saturation_rps` (`slots_for` slots): the variance of
    slow counts over windows of `CORRELATION_WINDOW_S`, over the binomial variance; inf at
    or above the saturation.

    The law is known only from `samples` answers, and a rare slow kind of request (5% of
    cache misses) drives the queueing: the mean ratio over the sketch and
    `RESAMPLES - 1` bootstrap resamples of as many answers. (Their largest chased single
    simulations' outliers: a p99's variance comes from rare bursts.)"""
    return _cached(round(float(rate_rps), 6), tuple(sketch_ms), int(samples),
                   float(saturation_rps), float(sla_ms))[0]


def simulated_slow_share(rate_rps: float, sketch_ms: tuple[float, ...], samples: int,
                         saturation_rps: float, sla_ms: float) -> float:
    """The share of requests slower than `sla_ms` in the same simulated queue (the
    sketch's own law; 1.0 at or above the saturation): where the model puts the rate
    against the SLA. The same simulation as `simulated_correlation`, cached with it."""
    return _cached(round(float(rate_rps), 6), tuple(sketch_ms), int(samples),
                   float(saturation_rps), float(sla_ms))[1]


@lru_cache(maxsize=4096)
def _cached(rate_rps: float, sketch_ms: tuple[float, ...], samples: int,
            saturation_rps: float, sla_ms: float) -> tuple[float, float]:
    if rate_rps <= 0 or not sketch_ms:
        return 1.0, 0.0
    if rate_rps >= saturation_rps:
        return math.inf, 1.0
    rng = np.random.default_rng(SIMULATION_SEED)
    count = int(min(max(samples, MIN_SKETCH_SAMPLES), MAX_RESAMPLED))
    answers = np.interp((np.arange(count) + 0.5) / count, SKETCH_PROBABILITIES, sketch_ms)
    ratio, share = _window_ratio(rate_rps, sketch_ms, saturation_rps, sla_ms, rng)
    ratios = [ratio]
    for _ in range(RESAMPLES - 1):
        resampled = latency_sketch(rng.choice(answers, count))
        ratios.append(_window_ratio(rate_rps, resampled, saturation_rps, sla_ms, rng)[0])
    return float(np.mean(ratios)), share


def _window_ratio(rate_rps: float, sketch_ms: tuple[float, ...], saturation_rps: float,
                  sla_ms: float, rng: np.random.Generator) -> tuple[float, float]:
    """(Variance of slow counts per window over the binomial's (>= 1), the slow share),
    one simulation."""
    slots, scale = model_queue(saturation_rps, sketch_ms)
    window = max(MIN_WINDOW_REQUESTS, round(rate_rps * CORRELATION_WINDOW_S))
    window = min(window, MAX_WINDOW_REQUESTS)
    windows = max(MIN_WINDOWS, SIMULATED_REQUESTS // window)  # many where the rate is low
    kept = window * windows
    start = kept // 10  # the queue fills from empty first
    arrivals_s = np.cumsum(rng.exponential(1.0 / rate_rps, start + kept))
    service_s = np.interp(rng.random(start + kept), SKETCH_PROBABILITIES, sketch_ms) * (
        scale / 1000.0)
    slow = fifo_sojourn_s(arrivals_s, service_s, slots)[start:] * 1000.0 > sla_ms
    counts = slow.reshape(windows, window).sum(axis=1)
    share = float(counts.sum() / kept)
    if share <= 0.0 or share >= 1.0:
        return 1.0, share
    return max(1.0, float(counts.var(ddof=1) / (window * share * (1.0 - share)))), share
