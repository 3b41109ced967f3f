import math

import numpy as np
import pytest

from tuner.measure.stats import (
    binom_cdf,
    exceedance_upper_bound,
    most_slow_to_pass,
    pass_chance,
    percentile_refuted,
    percentile_supported,
    requests_for_chance,
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


@pytest.mark.parametrize("n", [29, 35, 100, 1000, 20000])
@pytest.mark.parametrize(("q", "confidence"), [(0.9, 0.975), (0.99, 0.975), (0.5, 0.9875)])
def test_the_most_slow_requests_that_pass_is_exactly_the_tests_edge(n, q, confidence):
    k = most_slow_to_pass(n, q, confidence)
    assert k == -1 or percentile_supported(k, n, q, confidence)
    assert not percentile_supported(k + 1, n, q, confidence)


def simulated_pass_share(share, sd, n, q, confidence, slow_so_far=0, so_far=0, draws=4000):
    """How often the test passes over binomial draws, the share itself drawn around its
    estimate (what `pass_chance` approximates)."""
    rng = np.random.default_rng(7)
    shares = np.clip(rng.normal(share, sd, draws), 0.0, 1.0)
    slow = rng.binomial(n, shares)
    return float(np.mean([percentile_supported(int(k) + slow_so_far, n + so_far, q, confidence)
                          for k in slow]))


@pytest.mark.parametrize(("share", "sd", "n", "q", "slow_so_far", "so_far"), [
    (0.05, 0.0, 300, 0.9, 0, 0),
    (0.07, 0.0, 1000, 0.9, 0, 0),
    (0.07, 0.02, 1000, 0.9, 0, 0),
    (0.085, 0.01, 4000, 0.9, 0, 0),
    (0.005, 0.0, 3000, 0.99, 0, 0),
    (0.006, 0.002, 5000, 0.99, 0, 0),
    (0.06, 0.01, 800, 0.9, 40, 500),
    (0.4, 0.03, 200, 0.5, 0, 0),
])
def test_the_chance_to_pass_matches_binomial_draws(share, sd, n, q, slow_so_far, so_far):
    predicted = pass_chance(share, sd ** 2, n, q, 0.975, slow_so_far, so_far)
    simulated = simulated_pass_share(share, sd, n, q, 0.975, slow_so_far, so_far)
    assert predicted == pytest.approx(simulated, abs=0.06)


@pytest.mark.parametrize(("share", "sd", "q"), [(0.05, 0.0, 0.9), (0.07, 0.01, 0.9),
                                                (0.004, 0.001, 0.99)])
def test_requests_sized_for_a_chance_pass_that_often(share, sd, q):
    n = requests_for_chance(share, sd ** 2, q, 0.975, 0.8)
    assert 0.72 <= simulated_pass_share(share, sd, n, q, 0.975) <= 0.88
    # Markedly fewer would not do (the chance saws with the test's discrete edge).
    assert pass_chance(share, sd ** 2, int(n * 0.85), q, 0.975) < 0.8


def test_a_share_at_or_above_the_allowed_one_or_too_uncertain_has_no_size():
    assert requests_for_chance(0.1, 0.0, 0.9, 0.975, 0.8) is None
    assert requests_for_chance(0.12, 0.0, 0.9, 0.975, 0.1) is None
    # Known to within a spread as wide as the gap to the limit: 80% is out of reach.
    assert requests_for_chance(0.08, 0.03 ** 2, 0.9, 0.975, 0.8) is None
    assert requests_for_chance(0.08, 0.015 ** 2, 0.9, 0.975, 0.8) is not None
    assert pass_chance(0.05, 0.0, 0, 0.9, 0.975) == 0.0
