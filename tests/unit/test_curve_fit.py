"""The queue model fitted along the rate axis: it finds a known scale, widens with little
evidence, and declines without a model (`tuner.measure.curve_fit`)."""

from __future__ import annotations

import numpy as np

from tuner.measure.curve_fit import (
    CONFIDENCE,
    fitted_crossing_rps,
    model_share_curve,
    share_through_crossing,
)
from tuner.measure.slow_correlation import SKETCH_PROBABILITIES

# Exponential service with a 25 ms mean on 4 slots (160 rps saturation), p90 <= 60 ms.
SKETCH = tuple(float(v) for v in -25.0 * np.log1p(-np.array(SKETCH_PROBABILITIES)))
SATURATION, SLA_MS, ALLOWED = 160.0, 60.0, 0.1


def _crossing(scale: float) -> float:
    """The model's crossing, `scale` times along the rate axis, found here independently:
    the share is interpolated (not its log) on a fine grid."""
    rates, shares = model_share_curve(SKETCH, SATURATION, SLA_MS)
    fine = np.linspace(rates[0], rates[-1], 20_001)
    return float(fine[np.argmax(np.interp(fine, rates, shares) > ALLOWED)]) * scale


def _measured(scale: float, fractions: tuple[float, ...], requests: int
              ) -> list[tuple[float, float, float]]:
    """Exact counts at rates that are these fractions of the true crossing, of a curve
    `scale` times the model's along the rate axis."""
    rates, shares = model_share_curve(SKETCH, SATURATION, SLA_MS)
    crossing = _crossing(scale)
    out = []
    for fraction in fractions:
        rate = crossing * fraction
        share = float(np.interp(rate / scale, rates, shares))
        out.append((rate, share * requests, float(requests)))
    return out


def test_the_fit_finds_a_curve_shifted_along_the_rate_axis():
    measured = _measured(1.25, (0.7, 0.9, 1.1), 20_000)
    fitted = fitted_crossing_rps(SKETCH, SATURATION, SLA_MS, ALLOWED, measured)
    assert fitted is not None
    assert 0.95 * _crossing(1.25) <= fitted <= 1.005 * _crossing(1.25)


def test_with_little_evidence_the_estimate_is_lower_not_wilder():
    many = fitted_crossing_rps(SKETCH, SATURATION, SLA_MS, ALLOWED,
                               _measured(1.25, (0.7, 0.9, 1.1), 20_000))
    few = fitted_crossing_rps(SKETCH, SATURATION, SLA_MS, ALLOWED,
                              _measured(1.25, (0.7, 0.9, 1.1), 40))
    assert few is not None and many is not None
    assert few < 0.97 * many


def test_the_low_end_is_below_the_truth_about_as_often_as_its_confidence_says():
    """With the model's shape exactly the endpoint's, the low end is a one-sided bound at
    `CONFIDENCE`: over 300 draws of binomial counts at a known scale it lies at or below
    the true crossing in about 90% of them (a check on the likelihood-ratio drop; the
    endpoint's own shape is what makes the product's use of it only a conservative point,
    see README)."""
    rng = np.random.default_rng(5)
    rates, shares = model_share_curve(SKETCH, SATURATION, SLA_MS)
    truth = _crossing(1.2)
    below = draws = 0
    for _ in range(300):
        measured = []
        for fraction in (0.8, 0.95, 1.1):
            rate = truth * fraction
            share = float(np.interp(rate / 1.2, rates, shares))
            measured.append((rate, float(rng.binomial(300, share)), 300.0))
        fitted = fitted_crossing_rps(SKETCH, SATURATION, SLA_MS, ALLOWED, measured)
        if fitted is not None:
            draws += 1
            below += fitted <= truth * 1.002  # the fit's own grid of scales
    assert draws >= 280
    assert CONFIDENCE - 0.06 <= below / draws <= CONFIDENCE + 0.07


def test_evidence_too_thin_to_reject_any_scale_gives_no_estimate():
    """A bound at the edge of the scales tried would only be the edge, not a bound."""
    thin = [(30.0, 0.0, 3.0)]  # even at 0.6 of the model's rates, 3 fast requests fit
    assert fitted_crossing_rps(SKETCH, SATURATION, SLA_MS, ALLOWED, thin) is None
    assert fitted_crossing_rps(SKETCH, SATURATION, SLA_MS, ALLOWED,
                               [(100.0, 0.0, 0.0)]) is None


def test_no_model_or_no_measurement_gives_no_estimate():
    measured = _measured(1.0, (0.8,), 1_000)
    assert fitted_crossing_rps((), SATURATION, SLA_MS, ALLOWED, measured) is None
    assert fitted_crossing_rps(SKETCH, SATURATION, SLA_MS, ALLOWED, []) is None
    # An SLA the model meets right up to its saturation: no crossing to carry.
    assert fitted_crossing_rps(SKETCH, SATURATION, 10_000.0, ALLOWED, measured) is None


def test_the_curve_moved_through_a_crossing_is_the_models_shape_there():
    """`share_through_crossing`: the model's curve moved along the rate axis so that it
    crosses the allowed share at the given rate: the allowed share there, the model's own
    (a curve `scale` times along the axis) below it, rising with the rate."""
    crossing = _crossing(1.25)
    at = [share_through_crossing(SKETCH, SATURATION, SLA_MS, ALLOWED, crossing,
                                 crossing * fraction) for fraction in (0.5, 0.7, 0.9, 1.0)]
    assert abs(at[-1] - ALLOWED) < 0.002
    assert all(low < high for low, high in zip(at, at[1:], strict=False))
    rates, shares = model_share_curve(SKETCH, SATURATION, SLA_MS)
    for fraction, share in zip((0.5, 0.7, 0.9), at, strict=False):
        model = float(np.interp(crossing * fraction / 1.25, rates, shares))
        assert abs(share - model) < 0.15 * model
    assert share_through_crossing((), SATURATION, SLA_MS, ALLOWED, crossing, crossing) is None
