"""Simulator semantics on hand-made traces."""

import math
from dataclasses import replace

import numpy as np
import pytest

from tuner.measure.analysis import Sla
from tuner.report.result import RunResult
from tuner.simulate.sweep import (
    POISSON_Z_99,
    LatencyCurve,
    ScalingModel,
    admissible,
    burst_margin,
    capacity_basis,
    curve_from_result,
    headroom,
    max_admissible_target,
    simulate,
    sweep_targets,
    target_grid,
)

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


def test_recommendation_is_the_cheapest_admissible_within_the_violation_budget():
    sweep = sweep_targets(TRACES["daily"], model(high=20, initial_instances=1), CURVE,
                          [600.0 * f for f in range(1, 11)], max_violation_minutes=0)
    assert sweep.recommended is not None
    assert sweep.recommended.violation_minutes == 0
    assert admissible(sweep.recommended.target, CURVE.capacity_rps_per_instance)
    cheaper = [(r, ok) for r, ok in zip(sweep.results, sweep.admissible, strict=True)
               if r.instance_hours < sweep.recommended.instance_hours]
    # A cheaper target either broke the budget or leaves no burst margin (6,000 = capacity).
    assert all(r.violation_minutes > 0 or not ok for r, ok in cheaper)


def test_latency_above_measured_capacity_is_a_violation():
    assert CURVE.violates(100.5)
    assert not CURVE.violates(99.0)
    assert CURVE.latency_at(70.0) == pytest.approx(42.5)


# A run whose capacity interval starts at 157.5 rps per instance (9,450 invocations/min).
BASIS = 157.5
WIDE = LatencyCurve((0.0, 100.0, BASIS), (20.0, 40.0, 95.0), BASIS, 100.0)


def run_result(ci_low=315.0, instances=2, **extra):
    steps = [{"achieved_rps": rps, "sla_percentile_ms": ms, "verdict": verdict}
             for rps, ms, verdict in [(100.0, 30.0, "pass"), (300.0, 80.0, "pass"),
                                      (400.0, 900.0, "fail")]]
    return RunResult("ep", "AllTraffic", "us-east-1", Sla(90, 100, 0.01), instances,
                     steps=tuple(steps), capacity_ci=(ci_low, 360.0), **extra)


@pytest.mark.parametrize(("extra", "expected"), [
    ({}, 157.5),
    ({"queue_model": {"poisson_capacity_rps": 300.0}}, 150.0),  # lower: it wins
    ({"queue_model": {"poisson_capacity_rps": 340.0}}, 157.5),  # higher: the interval wins
    ({"queue_model": {"poisson_capacity_rps": None}}, 157.5),
    ({"queue_model": None}, 157.5)])
def test_capacity_basis_is_the_interval_low_end_or_the_poisson_capacity_if_lower(extra,
                                                                                 expected):
    result = run_result(**extra)
    assert capacity_basis(result) == pytest.approx(expected)
    assert curve_from_result(result).capacity_rps_per_instance == pytest.approx(expected)


def test_a_run_without_a_capacity_interval_gives_no_curve():
    with pytest.raises(ValueError, match="capacity interval"):
        curve_from_result(replace(run_result(), capacity_ci=None))
    with pytest.raises(ValueError, match="not a positive rate"):
        curve_from_result(run_result(queue_model={"poisson_capacity_rps": 0.0}))


def test_a_minute_violates_when_its_mean_rate_exceeds_the_basis():
    result = simulate([9_460.0, 9_440.0], model(target=9_000.0, initial_instances=1), WIDE)
    assert [m.violation for m in result.timeline] == [True, False]
    assert result.peak_load_share == pytest.approx(9_460 / 60 / BASIS)


def test_admissible_targets_keep_the_99th_percentile_minute_within_the_basis():
    assert burst_margin(9_000.0) == pytest.approx(POISSON_Z_99 / math.sqrt(9_000))
    limit = max_admissible_target(BASIS)
    assert limit + POISSON_Z_99 * math.sqrt(limit) == pytest.approx(60 * BASIS)
    assert 9_220 < limit < 9_230
    assert admissible(9_200.0, BASIS) and not admissible(9_240.0, BASIS)
    assert not admissible(9_450.0, BASIS)  # at capacity: no margin at all
    assert admissible(9_450.0, BASIS, z=0.0)  # z = 0 switches the margin off
    # A slow endpoint (0.5 rps, 30/min) still has admissible targets: 18 + 2.326 x 4.24 < 30.
    assert admissible(18.0, 0.5) and not admissible(20.0, 0.5)


def test_flat_trace_recommends_a_target_with_headroom_not_the_capacity():
    # 12,000/min flat; the old sweep recommended 9,450 = 157.5 x 60 (zero headroom) because
    # nothing violates up to capacity and equal cost went to the highest target.
    grid = target_grid(BASIS) + [4_725.0]
    sweep = sweep_targets([12_000.0] * 120, model(target=4_725.0, high=20), WIDE, grid)
    at_capacity = next(r for r in sweep.results if r.target == pytest.approx(9_450.0))
    assert at_capacity.violation_minutes == 0  # the replay alone cannot reject it
    rec = sweep.recommended
    assert rec is not None and rec.target < 9_450.0
    assert rec.target == pytest.approx(6_142.5)  # cheapest (2 instances), lowest such target
    assert rec.instance_hours == pytest.approx(at_capacity.instance_hours)
    assert rec.headroom == pytest.approx(1 - 6_142.5 / 60 / BASIS) == pytest.approx(0.35)
    assert rec.headroom >= burst_margin(rec.target)
    assert rec.peak_load_share == pytest.approx(6_000 / 60 / BASIS)
    rows = {row["target"]: row for row in sweep.rows()}
    assert rows[9_450.0]["headroom"] == 0.0 and rows[9_450.0]["admissible"] is False
    assert all("headroom" in row and "peak_load_share" in row for row in rows.values())


def test_equally_cheap_targets_go_to_the_lower_one():
    sweep = sweep_targets([3_000.0] * 60, model(), CURVE, [3_000.0, 4_000.0, 5_000.0])
    assert {r.instance_hours for r in sweep.results} == {1.0}
    assert sweep.recommended.target == 3_000.0


def test_no_admissible_target_means_no_recommendation():
    sweep = sweep_targets([3_000.0] * 60, model(), CURVE, [6_000.0, 7_000.0])
    assert sweep.results[0].violation_minutes == 0  # 6,000 is safe on this trace, yet at capacity
    assert sweep.recommended is None
    with pytest.raises(ValueError, match="z"):
        sweep_targets([3_000.0] * 60, model(), CURVE, [3_000.0], z=-1.0)


def test_headroom_is_the_unused_share_of_the_basis():
    assert headroom(4_725.0, BASIS) == pytest.approx(0.5)
    assert simulate([100.0] * 5, model(target=4_725.0), WIDE).headroom == pytest.approx(0.5)


def test_a_larger_scale_out_proceeds_within_the_cooldown():
    # 9,000 triggers 1 -> 3 at minute 32; at 33 traffic jumps to 24,000 (8 instances' worth).
    traffic = [2_500] * 30 + [9_000] * 3 + [24_000] * 30
    result = simulate(traffic, model(initial_instances=1), CURVE)
    assert actions(result, "out") == [32, 33]  # before: [32, 37], the cooldown blocked it
    assert result.timeline[33].starting == 7
    assert result.timeline[38].in_service == 8
    assert result.violation_minutes == 8  # minutes 30-37; before: 12 (30-41)


def test_starting_instances_do_not_inflate_the_next_desired_count():
    # Instances take 10 minutes, the cooldown 5: at minute 37 one instance still serves all
    # 9,000/min with two on the way; 3 are still enough, not 3 x 9,000 / 3,000 = 9.
    traffic = [2_500] * 30 + [9_000] * 40
    result = simulate(traffic, model(initial_instances=1, startup_minutes=10), CURVE)
    assert actions(result, "out") == [32]
    assert result.peak_instances == 3
