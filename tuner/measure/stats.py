"""Small statistics the step verdicts rest on (no SciPy dependency).

A latency SLA "percentile q <= X" is a claim about a proportion: at most (1 - q) of
requests may be slower than X. Counting the slow requests in a step and testing that count
against a binomial distribution says whether the step *supports* the claim at a given
confidence, instead of trusting a noisy point estimate of a high percentile.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "binom_cdf",
    "binom_sf",
    "exceedance_lower_bound",
    "exceedance_upper_bound",
    "most_slow_to_pass",
    "pass_chance",
    "percentile_refuted",
    "percentile_supported",
    "requests_for_chance",
    "requests_to_show",
    "samples_for_zero_exceedances",
]


def _log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    # Sum the smaller tail in log space for accuracy.
    if k <= n * p:
        return min(1.0, _tail_sum(0, k, n, p))
    return max(0.0, 1.0 - _tail_sum(k + 1, n, n, p))


# Tails longer than this are summed with NumPy: the Clopper-Pearson bounds bisect over
# tails of thousands of terms, one `lgamma` triple per term in Python.
_SHORT_TAIL = 32


def _tail_sum(first: int, last: int, n: int, p: float) -> float:
    """P(first <= X <= last), summed in log space (largest term factored out)."""
    if last - first < _SHORT_TAIL:
        logs = [_log_pmf(i, n, p) for i in range(first, last + 1)]
        top = max(logs)
        return math.exp(top) * sum(math.exp(v - top) for v in logs)
    # log pmf(i + 1) - log pmf(i) = log((n - i) / (i + 1)) + log(p / (1 - p)), accumulated
    # from the tail's largest term (the mode, or the end nearest it): the terms that
    # matter carry the least rounding.
    i = np.arange(first, last, dtype=float)
    steps = np.log((n - i) / (i + 1.0)) + (math.log(p) - math.log1p(-p))
    offsets = np.concatenate(([0.0], np.cumsum(steps)))
    anchor = min(max(int((n + 1) * p), first), last)
    logs = _log_pmf(anchor, n, p) + offsets - offsets[anchor - first]
    top = float(logs.max())
    return math.exp(top) * float(np.exp(logs - top).sum())


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return 1.0 - binom_cdf(k - 1, n, p)


def samples_for_zero_exceedances(quantile: float, confidence: float) -> int:
    """Fewest requests that can show `percentile <= threshold` with no slow request at all.

    n >= ln(alpha) / ln(q): p90 at 95% -> 29, p99 at 95% -> 299, p99 at 99% -> 459.
    """
    alpha = 1.0 - confidence
    return math.ceil(math.log(alpha) / math.log(quantile))


def percentile_supported(exceedances: int, n: int, quantile: float, confidence: float) -> bool:
    """One-sided binomial test: do `n` requests with `exceedances` slow ones support
    "the q-quantile is at or below the threshold" at `confidence`?

    H0: the true exceedance probability is at least 1 - q. We reject it (and pass the step)
    when seeing this few exceedances would be improbable under H0.
    """
    if n == 0:
        return False
    return binom_cdf(exceedances, n, 1.0 - quantile) <= 1.0 - confidence


def percentile_refuted(exceedances: int, n: int, quantile: float, confidence: float) -> bool:
    """The mirror test: is the q-quantile significantly *above* the threshold?"""
    if n == 0:
        return False
    return binom_sf(exceedances, n, 1.0 - quantile) <= 1.0 - confidence


def exceedance_upper_bound(exceedances: int, n: int, confidence: float) -> float:
    """Clopper-Pearson upper bound of the exceedance probability (bisection on the CDF)."""
    if n == 0:
        return 1.0
    alpha = 1.0 - confidence
    lo, hi = exceedances / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if binom_cdf(exceedances, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def exceedance_lower_bound(exceedances: int, n: int, confidence: float) -> float:
    """Clopper-Pearson lower bound of the exceedance probability (bisection on the tail)."""
    if n == 0 or exceedances == 0:
        return 0.0
    alpha = 1.0 - confidence
    lo, hi = 0.0, exceedances / n
    for _ in range(60):
        mid = (lo + hi) / 2
        if binom_sf(exceedances, n, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return lo


def requests_to_show(share: float, quantile: float, confidence: float) -> int:
    """About how many requests a step needs to show "q-quantile within the SLA" at
    `confidence` when the true share of slow requests is `share` (< 1 - q); normal
    approximation of the one-sided binomial test, never below the zero-exceedance count."""
    allowed = 1.0 - quantile
    floor = samples_for_zero_exceedances(quantile, confidence)
    if share >= allowed:
        return 10**9
    z = _z(confidence)
    gap = allowed - share
    spread = z * math.sqrt(allowed * (1 - allowed))
    return max(floor, math.ceil((spread / gap) ** 2))


@lru_cache(maxsize=4096)
def most_slow_to_pass(n: int, quantile: float, confidence: float) -> int:
    """The most slow requests among `n` that `percentile_supported` still passes (-1: none
    would). Found from the normal approximation's guess, then exactly, a count at a time."""
    allowed, alpha = 1.0 - quantile, 1.0 - confidence
    spread = _z(confidence) * math.sqrt(n * allowed * (1 - allowed))
    k = min(n, max(-1, math.floor(n * allowed - spread)))
    while k >= 0 and binom_cdf(k, n, allowed) > alpha:
        k -= 1
    while k < n and binom_cdf(k + 1, n, allowed) <= alpha:
        k += 1
    return k


def pass_chance(share: float, share_variance: float, new_requests: float, quantile: float,
                confidence: float, slow_so_far: float = 0.0, requests_so_far: float = 0.0
                ) -> float:
    """The chance that `percentile_supported` passes once `new_requests` more independent
    requests are added to those so far, when each is slow with probability `share`, itself
    known only to within `share_variance` (normal approximation of the new slow count,
    with a continuity correction).

    The search plans a confirmation with it: sized to show the SLA at exactly the share
    expected, a step passes about half the time; the uncertainty of that share widens the
    spread, so more requests buy less where the share is poorly known."""
    n_new = max(0.0, new_requests)
    total = round(requests_so_far + n_new)
    if total <= 0:
        return 0.0
    limit = most_slow_to_pass(total, quantile, confidence) + 0.5 - slow_so_far
    mean = n_new * share
    variance = n_new * share * (1 - share) + n_new ** 2 * max(0.0, share_variance)
    if variance <= 0:
        return 1.0 if mean <= limit else 0.0
    return _normal_cdf((limit - mean) / math.sqrt(variance))


def requests_for_chance(share: float, share_variance: float, quantile: float,
                        confidence: float, chance: float, slow_so_far: float = 0.0,
                        requests_so_far: float = 0.0, most: int = 10**7) -> int | None:
    """The fewest new independent requests whose `pass_chance` reaches `chance` (None: not
    within `most`; where the share is uncertain, no count may reach it)."""
    def enough(n: int) -> bool:
        return pass_chance(share, share_variance, n, quantile, confidence, slow_so_far,
                           requests_so_far) >= chance

    gap = 1.0 - quantile - share
    if gap <= 0 or (share_variance > 0
                    and _normal_cdf(gap / math.sqrt(share_variance)) < chance):
        return None  # even endless requests leave the share's own doubt (the limit)
    high = max(1, samples_for_zero_exceedances(quantile, confidence))
    while not enough(high):
        if high >= most:
            return None
        high = min(most, high * 2)
    low = 0
    while high - low > max(1, high // 100):  # to within 1%: a plan, not a verdict
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@lru_cache(maxsize=64)
def _z(confidence: float) -> float:
    """Standard normal quantile by bisection on erf (no SciPy)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < confidence:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
