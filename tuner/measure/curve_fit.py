"""Where the slow share crosses the SLA, from the queue model's curve fitted to every rate.

Pure (numpy). Wherever there is a fit it sets the point estimate
(`analysis.point_estimate`); the fallback interpolates the slow share between two measured
rates, and falls short in three ways. It reads two rates, and near a p99's knee the one
above the highest leaning to pass was often a short window that looked sustainable over
the capacity. Where that rate is itself still unknown (too few requests to lean either
way, its share within the SLA), it stops there and gives no credit beyond it: on a
low-rate p99 that is where the search's samples run out, some 20% below the capacity (the
rates near the capacity carry a few effective requests each). And
a straight line between a pass well below the knee and a fail above it undershoots a
share curve that stays flat and then shoots up (a 1.5 s model on many slots).

Pooled over every rate, the same requests say more when the curve's *shape* is known.
The queue model (`slow_correlation`: an M/G/c queue fed the low-load latencies, saturating
at the saturation seen, a lower bound where no step was overloaded) gives that shape; its
position along the rate axis is fitted to the measured slow shares (binomial likelihood of
each rate's *effective* counts, a rate scale k: the share at rate r is the model's at
r / k), and the estimate is the crossing's low end of the fits the measurements allow: the
lowest k they do not reject at `CONFIDENCE` (likelihood ratio). That is a bound only as
far as the model's shape is the endpoint's, which it is not exactly (offline, nine zoo
cases x 40 seeds: the fit set the point in 333 of the 339 runs with a pass and put it
above the truth in 78, at most +13.4%, seventeenth session): a conservative choice of
point, not a claim. With little information the low end leaves the range tried and there
is no fitted point.

The model's tail is only as good as the low-load sample (a sketch of a few hundred
answers knows nothing beyond its largest one), so the caller never takes the fit past a
rate above the highest leaning to pass whose share is over the SLA
(`analysis.fitted_estimate`); where there is a fit it sets the point, above or below the
two-rate interpolation (`analysis.point_estimate`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from tuner.measure.queueing import fifo_sojourn_s
from tuner.measure.slow_correlation import SKETCH_PROBABILITIES, model_queue

__all__ = ["CONFIDENCE", "MeasuredShare", "fitted_crossing_rps", "model_share_curve",
           "share_through_crossing"]

# How sure the fit must be before a lower scale is rejected (one-sided).
CONFIDENCE = 0.9
# The model curve: this many rates from GRID_LOW to GRID_HIGH of the saturation seen,
# each simulated with the same arrivals and services (common random numbers: a smooth
# curve), MODEL_REQUESTS each, the first tenth (filling from empty) left out.
GRID_RATES = 35
GRID_LOW, GRID_HIGH = 0.15, 0.995
MODEL_REQUESTS = 20_000
MODEL_SEED = 20261201
# Rate scales tried: the capacity between these multiples of the model's crossing.
SCALES = np.round(np.linspace(0.6, 1.6, 201), 4)
# The model's shares are floored at CURVE_FLOOR before taking logs (a share it never
# saw is small, not impossible), a rate's at FLOOR inside (0, 1).
CURVE_FLOOR = 1e-5
FLOOR = 1e-6


MeasuredShare = tuple[float, float, float]  # (offered rps, effective slow, effective n)


@lru_cache(maxsize=64)
def model_share_curve(sketch_ms: tuple[float, ...], saturation_rps: float,
                      sla_ms: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(rates, slow shares) of the model queue (`slow_correlation.model_queue`) over its
    grid of rates."""
    slots, scale = model_queue(saturation_rps, sketch_ms)
    rng = np.random.default_rng(MODEL_SEED)
    unit_arrivals = np.cumsum(rng.exponential(1.0, MODEL_REQUESTS))
    service_s = np.interp(rng.random(MODEL_REQUESTS), SKETCH_PROBABILITIES,
                          sketch_ms) * scale / 1000.0
    rates = saturation_rps * np.linspace(GRID_LOW, GRID_HIGH, GRID_RATES)
    kept = MODEL_REQUESTS // 10
    shares = [float(np.mean(fifo_sojourn_s(unit_arrivals / rate, service_s, slots)[kept:]
                            * 1000.0 > sla_ms)) for rate in rates]
    return tuple(float(r) for r in rates), tuple(shares)


def fitted_crossing_rps(sketch_ms: tuple[float, ...], saturation_rps: float, sla_ms: float,
                        allowed_share: float, measured: list[MeasuredShare],
                        confidence: float = CONFIDENCE) -> float | None:
    """The rate where the fitted model's slow share reaches `allowed_share`, at the lowest
    rate scale the measurements do not reject at `confidence` (likelihood ratio); a bound
    only as far as the model's shape is the endpoint's. None without a model or
    measurements, where the model never reaches the share below its saturation, or where
    even the lowest scale tried is not rejected (the measurements say too little: the
    bound would lie below the range, not at its edge)."""
    if (not sketch_ms or saturation_rps <= 0 or sla_ms <= 0 or not measured
            or sum(m[2] for m in measured) <= 0):
        return None
    curve = _log_curve(sketch_ms, saturation_rps, sla_ms, allowed_share)
    if curve is None:
        return None
    grid, log_share, model_crossing = curve
    rates = np.array([m[0] for m in measured])
    slow = np.array([m[1] for m in measured])
    total = np.array([m[2] for m in measured])
    likelihood = np.array([_log_likelihood(rates / k, slow, total, grid, log_share)
                           for k in SCALES])
    drop = NormalDist().inv_cdf(confidence) ** 2 / 2.0
    accepted = np.nonzero(likelihood >= likelihood.max() - drop)[0]
    if accepted[0] == 0:
        return None
    return float(model_crossing * SCALES[accepted[0]])


def share_through_crossing(sketch_ms: tuple[float, ...], saturation_rps: float,
                           sla_ms: float, allowed_share: float, crossing_rps: float,
                           rate_rps: float) -> float | None:
    """The model's slow share at `rate_rps` once its curve is moved along the rate axis
    to cross `allowed_share` at `crossing_rps` (the fitted point): the shape of the share
    between the rates measured and the point, where a straight line to the SLA's share
    at the point overstates it on a bend. None without a model crossing."""
    if not sketch_ms or saturation_rps <= 0 or sla_ms <= 0 or crossing_rps <= 0:
        return None
    curve = _log_curve(sketch_ms, saturation_rps, sla_ms, allowed_share)
    if curve is None:
        return None
    grid, log_share, model_crossing = curve
    scale = crossing_rps / model_crossing
    return float(np.exp(np.interp(rate_rps / scale, grid, log_share, right=0.0)))


def _log_curve(sketch_ms: tuple[float, ...], saturation_rps: float, sla_ms: float,
               allowed_share: float) -> tuple[tuple[float, ...], np.ndarray, float] | None:
    """(The model's grid of rates, its log slow shares floored at `CURVE_FLOOR`, the rate
    where it crosses `allowed_share`); None where it never does below its saturation."""
    grid, shares = model_share_curve(tuple(sketch_ms), float(saturation_rps), float(sla_ms))
    log_share = np.log(np.clip(np.array(shares), CURVE_FLOOR, 1.0))
    model_crossing = _crossing_rps(np.array(grid), log_share, math.log(allowed_share))
    if model_crossing is None:
        return None
    return grid, log_share, model_crossing


def _crossing_rps(grid: np.ndarray, log_share: np.ndarray, log_allowed: float
                  ) -> float | None:
    """Where the model's log share first exceeds `log_allowed`, linearly between the grid
    rates around it (the first grid rate over it would overstate it by up to a step)."""
    over = np.nonzero(log_share > log_allowed)[0]
    if over.size == 0:
        return None
    i = int(over[0])
    if i == 0:
        return float(grid[0])
    below, above = log_share[i - 1], log_share[i]
    return float(grid[i - 1] + (log_allowed - below) / (above - below)
                 * (grid[i] - grid[i - 1]))


def _log_likelihood(rates: np.ndarray, slow: np.ndarray, total: np.ndarray,
                    grid: tuple[float, ...], log_share: np.ndarray) -> float:
    """Binomial log-likelihood of the measured counts under the model at these rates (at or
    beyond its saturation every request is slow)."""
    share = np.clip(np.exp(np.interp(rates, grid, log_share, right=0.0)), FLOOR, 1 - FLOOR)
    return float(np.sum(slow * np.log(share) + (total - slow) * np.log(1.0 - share)))
