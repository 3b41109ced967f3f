"""Simulator semantics on hand-made traces."""

import math

import numpy as np
import pytest

from tuner.simulate import LatencyCurve, ScalingModel, simulate, sweep_targets

# One instance handles 100 rps (6,000/min) within a 100 ms SLA.
CURVE = LatencyCurve((0.0, 50.0, 90.0, 100.0), (20.0, 25.0, 60.0, 95.0), 100.0, 100.0)


def model(target=3000.0, low=1, high=10, **kw):
    return ScalingModel(target=target, min_capacity=low, max_capacity=high, **kw)


def actions(result, kind):
    return [m.minute for m in result.timeline if m.action == kind]


@pytest.mark.parametrize(("load", "low", "high", "expected"), [
    (10_000, 1, 10, 4), (2_000, 1, 10, 1), (10_000, 1, 3, 3), (100, 2, 10, 2)])
def test_flat_load_settles_at_ceil_load_over_target(load, low, high, expected):
    result = simulate([load] * 120, model(low=low, high=high, initial_instances=low), CURVE)
    final = result.timeline[-1]
    assert final.in_service == expected == min(high, max(low, math.ceil(load / 3000)))
    assert final.starting == 0


def test_step_up_scales_out_after_three_minutes_and_not_again_within_cooldown():
    traffic = [2_500] * 30 + [9_000] * 60
    result = simulate(traffic, model(initial_instances=1), CURVE)
    outs = actions(result, "out")
    assert outs[0] == 32  # minutes 30, 31, 32 above target: the third triggers
    assert all(b - a >= 5 for a, b in zip(outs, outs[1:], strict=False))


def test_scale_in_needs_fifteen_minutes_below_ninety_percent_of_target():
    traffic = [9_000] * 30 + [2_600] * 40  # 2,600/3 instances is below 0.9 x 3,000
    result = simulate(traffic, model(initial_instances=3), CURVE)
    assert actions(result, "in")[0] == 44  # minutes 30..44: the fifteenth
    borderline = simulate([9_000] * 30 + [8_200] * 40, model(initial_instances=3), CURVE)
    assert actions(borderline, "in") == []  # 2,733 per instance is above 0.9 x target


def test_startup_delay_shows_as_violation_minutes():
    traffic = [5_000] * 10 + [15_000] * 30  # 250 rps: 2.5 instances' worth
    slow = simulate(traffic, model(initial_instances=1, startup_minutes=5), CURVE)
    fast = simulate(traffic, model(initial_instances=1, startup_minutes=1), CURVE)
    assert slow.violation_minutes > fast.violation_minutes > 0
    first_violation = next(m.minute for m in slow.timeline if m.violation)
    assert first_violation == 10


def test_instance_hours_count_starting_instances():
    result = simulate([3_000] * 60, model(initial_instances=1), CURVE)
    assert result.instance_hours == pytest.approx(1.0)
    assert result.scaling_actions == 0
    assert result.peak_instances == 1


TRACES = {
    "daily": 4_000 + 3_500 * np.sin(np.linspace(0, 4 * np.pi, 600)),
    "spiky": np.where(np.arange(400) % 97 < 10, 14_000, 3_000),
    "ramp": np.linspace(500, 20_000, 300),
}


@pytest.mark.parametrize("name", sorted(TRACES))
def test_lower_targets_never_cost_fewer_instance_hours(name):
    sweep = sweep_targets(TRACES[name], model(high=20, initial_instances=1), CURVE,
                          [600.0 * f for f in range(1, 11)])
    hours = [r.instance_hours for r in sweep.results]  # ascending targets
    assert all(a >= b - 1e-9 for a, b in zip(hours, hours[1:], strict=False))


def test_recommendation_is_the_cheapest_within_the_violation_budget():
    sweep = sweep_targets(TRACES["daily"], model(high=20, initial_instances=1), CURVE,
                          [600.0 * f for f in range(1, 11)], max_violation_minutes=0)
    assert sweep.recommended is not None
    assert sweep.recommended.violation_minutes == 0
    cheaper = [r for r in sweep.results if r.instance_hours < sweep.recommended.instance_hours]
    assert all(r.violation_minutes > 0 for r in cheaper)


def test_latency_above_measured_capacity_is_a_violation():
    assert CURVE.violates(100.5)
    assert not CURVE.violates(99.0)
    assert CURVE.latency_at(70.0) == pytest.approx(42.5)
