"""The accuracy benchmark's yardstick (benchmarks/truth.py): an independent event-driven
simulation must agree with tuner.measure.queueing and reproduce known figures."""

import functools
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from truth import sojourn_times_s, true_capacity  # noqa: E402

from tuner.measure.queueing import ServiceLaw, capacity_at_sla  # noqa: E402

# An event-driven simulation per case: ~10 s in all, so `make test-fast` leaves them out.
pytestmark = pytest.mark.slow


@functools.cache
def truth(law: str, slots: int, percentile: float, sla_ms: float, arrivals: str) -> float:
    return true_capacity(ServiceLaw.parse(law), slots, percentile, sla_ms, arrivals)


def test_events_by_hand():
    # One slot, 200 ms each: the second and third wait for the first and second.
    assert sojourn_times_s([0.0, 0.1, 0.15], [0.2, 0.2, 0.2], 1) == pytest.approx(
        [0.2, 0.3, 0.45])
    # Two slots: the third request takes the slot the first frees at 0.2.
    assert sojourn_times_s([0.0, 0.1, 0.15], [0.2, 0.5, 0.1], 2) == pytest.approx(
        [0.2, 0.5, 0.15])
    assert sojourn_times_s([], [], 3) == []


@pytest.mark.parametrize("law, slots, percentile, sla_ms, arrivals", [
    ("exponential:25", 4, 50, 40, "poisson"),
    ("lognormal:40:1.0", 2, 90, 200, "uniform"),
    ("exponential:20", 1, 50, 50, "poisson"),
])
def test_agrees_with_tuner_queueing(law, slots, percentile, sla_ms, arrivals):
    theirs = capacity_at_sla(ServiceLaw.parse(law), slots, percentile, sla_ms, arrivals)
    assert truth(law, slots, percentile, sla_ms, arrivals) == pytest.approx(theirs, rel=0.02)


def test_mm1_median_matches_the_formula():
    # M/M/1: sojourn ~ Exp(mu - lambda), median ln2 / (mu - lambda) <= 50 ms.
    expected = 50.0 - math.log(2) / 0.050
    assert truth("exponential:20", 1, 50, 50, "poisson") == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("law, slots, percentile, sla_ms, uniform, poisson", [
    ("constant:25", 4, 90, 50, 160.0, 125.0),
    ("constant:60", 1, 99, 200, 16.6, 6.1),
    ("lognormal:40:1.0", 2, 90, 200, 39.0, 34.6),
])
def test_known_figures(law, slots, percentile, sla_ms, uniform, poisson):
    assert truth(law, slots, percentile, sla_ms, "uniform") == pytest.approx(uniform, rel=0.03)
    assert truth(law, slots, percentile, sla_ms, "poisson") == pytest.approx(poisson, rel=0.03)
