import math

import pytest

from tuner.measure.stats import (
    binom_cdf,
    exceedance_upper_bound,
    percentile_refuted,
    percentile_supported,
    samples_for_zero_exceedances,
)


@pytest.mark.parametrize(("q", "confidence", "expected"),
                         [(0.90, 0.95, 29), (0.99, 0.95, 299), (0.99, 0.99, 459)])
def test_samples_needed_match_the_textbook(q, confidence, expected):
    assert samples_for_zero_exceedances(q, confidence) == expected


def test_binomial_cdf_matches_direct_sum():
    n, p = 40, 0.1
    direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(6))
    assert binom_cdf(5, n, p) == pytest.approx(direct, rel=1e-9)
    assert binom_cdf(30, n, p) == pytest.approx(1.0)
    assert binom_cdf(-1, n, p) == 0.0


def test_zero_exceedances_support_p99_only_with_enough_requests():
    assert not percentile_supported(0, 298, 0.99, 0.95)
    assert percentile_supported(0, 299, 0.99, 0.95)


def test_many_exceedances_refute_and_few_support():
    assert percentile_refuted(30, 100, 0.90, 0.95)
    assert not percentile_supported(30, 100, 0.90, 0.95)
    assert percentile_supported(3, 200, 0.90, 0.95)
    assert not percentile_refuted(3, 200, 0.90, 0.95)


def test_upper_bound_is_above_observed_share():
    bound = exceedance_upper_bound(5, 1000, 0.95)
    assert 0.005 < bound < 0.02
