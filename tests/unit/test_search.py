import math
from dataclasses import replace
from statistics import NormalDist

import numpy as np
import pytest

from tuner.measure.analysis import (
    QueueShape,
    StepResult,
    StepSpec,
    bracket,
    pool_by_rate,
    queue_shape,
)
from tuner.measure.search import (
    MAX_LOOKS,
    Phase,
    SearchSettings,
    _bend,
    _confirm,
    _extension_option,
    _spend_the_rest,
    budget_advice,
    next_step,
    step_duration,
    warmup_for,
)
from tuner.measure.slow_correlation import SKETCH_PROBABILITIES


def judge(spec: StepSpec, capacity: float, min_requests: int = 0) -> StepResult:
    """A synthetic endpoint: passes up to `capacity`, saturates above it."""
    requests = int(spec.offered_rps * spec.window_s)
    over = spec.offered_rps > capacity
    verdict = "fail" if over else ("inconclusive" if requests < min_requests else "pass")
    return StepResult(index=spec.index, phase=spec.phase, offered_rps=spec.offered_rps,
                      achieved_rps=min(spec.offered_rps, capacity), requests=requests,
                      errors=0, error_rate=0.0, p50_ms=10, p90_ms=500 if over else 20,
                      p99_ms=900 if over else 30, sla_percentile_ms=500 if over else 20,
                      slow_requests=requests if over else 0, duration_s=spec.duration_s,
                      warmup_s=spec.warmup_s, verdict=verdict)


def run(settings: SearchSettings, capacity: float, min_requests: int = 0):
    history: list[StepResult] = []
    used = 0.0
    while (spec := next_step(history, settings, used)) is not None:
        history.append(judge(spec, capacity, min_requests))
        used += spec.duration_s
    return history, used


@pytest.mark.parametrize("capacity", [37.0, 200.0, 1234.0])
def test_adaptive_search_brackets_capacity_within_precision(capacity):
    settings = SearchSettings(start_rps=10, precision=0.03, budget_s=300)
    history, used = run(settings, capacity)
    lo = max(s.offered_rps for s in history if s.passed)
    hi = min(s.offered_rps for s in history if not s.passed)
    assert lo <= capacity < hi
    assert (hi - lo) / lo <= 0.03
    assert used <= 300
    phases = [s.phase for s in history]
    assert phases[0] == "ramp" and "bisect" in phases


def test_budget_is_never_exceeded():
    settings = SearchSettings(start_rps=10, precision=0.001, budget_s=30)
    _, used = run(settings, 500.0)
    assert used <= 30


def test_linear_search_stops_at_first_fail():
    settings = SearchSettings(strategy="linear", start_rps=50, linear_step_rps=50,
                              budget_s=1000)
    history, _ = run(settings, 175.0)
    assert [s.offered_rps for s in history] == [50, 100, 150, 200]


def test_start_above_capacity_probes_down():
    settings = SearchSettings(start_rps=100, budget_s=300)
    history, _ = run(settings, 30.0)
    assert history[1].phase == "probe-down"
    assert any(s.passed for s in history)


def test_max_rps_caps_the_ramp():
    settings = SearchSettings(start_rps=10, max_rps=60, budget_s=300)
    history, _ = run(settings, 1000.0)
    assert max(s.offered_rps for s in history) == 60
    assert all(s.passed for s in history)


def test_low_rate_inconclusive_steps_keep_the_ramp_going():
    settings = SearchSettings(start_rps=2, percentile=99, budget_s=300, max_step_s=5)
    history, _ = run(settings, 300.0, min_requests=299)
    assert history[0].verdict == "inconclusive"
    lo = max(s.offered_rps for s in history if s.passed)
    assert lo > 250


def test_step_duration_follows_the_percentile_sample_need():
    p99 = SearchSettings(percentile=99, min_step_s=1, max_step_s=60, warmup_s=0)
    p90 = SearchSettings(percentile=90, min_step_s=1, max_step_s=60, warmup_s=0)
    assert step_duration(100, p99) > step_duration(100, p90)
    assert step_duration(100, p99) == pytest.approx(4 * 299 / 100)


def _step(index: int, rate: float, requests: int, slow: int, verdict: str,
          phase: str = "ramp", completed: float | None = None) -> StepResult:
    return StepResult(index=index, phase=phase, offered_rps=rate, achieved_rps=rate,
                      requests=requests, errors=0, error_rate=0.0, p50_ms=10, p90_ms=20,
                      p99_ms=30, sla_percentile_ms=20, slow_requests=slow, duration_s=9.0,
                      warmup_s=1.0, verdict=verdict,
                      completed_rps=rate if completed is None else completed)


def test_the_ramp_grows_faster_past_rates_too_low_to_collect_its_requests():
    """A 1.5 s model started at 1 rps: ramp steps of 3 requests said nothing and cost a
    third of the budget. After such a step (nothing slow) the ramp grows x4."""
    settings = SearchSettings(start_rps=1, budget_s=150, sla_latency_ms=2200)
    empty = [_step(0, 1.0, 3, 0, "inconclusive")]
    assert next_step(empty, settings, 12.0).offered_rps == 4.0
    enough = [_step(0, 10.0, 80, 0, "pass")]
    assert next_step(enough, settings, 12.0).offered_rps == 20.0


def test_the_ramp_looks_again_only_at_a_step_that_leans_to_fail_or_could_not_keep_up():
    """Before: any ramp step over the SLA's share was looked at again (the 1.5 s model:
    4 of 34 slow at 4 rps, 7 of 54 at 8, 6 of 53 at 16, 37 s on noise) - when its
    answers per second came out above the offered rate by chance; otherwise (the settled
    warm-up is endless at the saturation seen) not even a step leaning to fail was. Now
    exactly a step leaning to fail, or one the endpoint could not keep up with, is."""
    settings = SearchSettings(start_rps=1, budget_s=150, sla_latency_ms=2200)
    noisy = [_step(0, 8.0, 54, 7, "inconclusive")]  # 13% of 54: leans nowhere
    choice = next_step(noisy, settings, 12.0)
    assert (choice.offered_rps, choice.phase) == (16.0, "ramp")
    leaning = [_step(0, 8.0, 54, 9, "inconclusive")]  # 17%: leans to fail
    assert next_step(leaning, settings, 12.0).phase == "extend"
    behind = [_step(0, 8.0, 54, 7, "inconclusive", completed=6.0)]  # 75% answered
    assert next_step(behind, settings, 12.0).phase == "extend"


def test_budget_left_that_no_planned_step_fits_is_spent_not_dropped():
    """Before: the search stopped with budget left when no confirmation fitted (a 1.5 s
    model stopped at 91 of 150 s). Now all of the rest goes to the inconclusive rate within
    the SLA so far that needs the fewest seconds more."""
    settings = SearchSettings(start_rps=20, percentile=90, budget_s=150, sla_latency_ms=100)
    history = [_step(0, 10.0, 80, 1, "pass"), _step(1, 20.0, 160, 12, "inconclusive"),
               _step(2, 40.0, 320, 28, "inconclusive"),
               _step(3, 80.0, 640, 600, "fail", completed=50.0)]
    rates = pool_by_rate(history, settings.sla)
    last_pass, first_fail = bracket(rates)
    shape = queue_shape(history, settings.sla)
    choice = _spend_the_rest(rates, last_pass, first_fail, settings, 12.0, shape)
    assert choice is not None and choice.rate == 20.0  # 7.5% slow: closer than 40's 8.8%
    assert choice.requests == pytest.approx((12.0 - warmup_for(settings, 20.0, shape)) * 20.0,
                                            abs=1)
    assert _spend_the_rest(rates, last_pass, first_fail, settings, 1.0, shape) is None


def test_a_probe_below_every_rate_takes_at_most_a_quarter_of_what_is_left():
    """Before: a probe at 1.5 rps for the requests a new p90 rate gets took 78 of 150 s."""
    settings = SearchSettings(start_rps=3, percentile=90, budget_s=150, sla_latency_ms=100)
    history = [_step(0, 3.0, 25, 20, "fail"), _step(1, 6.0, 47, 40, "fail")]
    spec = next_step(history, settings, 18.0)
    assert spec.phase == "probe-down"
    assert spec.duration_s - spec.warmup_s <= (150 - 18.0) / 4 + 1e-9


def test_a_rate_looked_at_max_looks_times_is_not_extended_again():
    """Before: a confirmation kept extending the same inconclusive rate, each look at a
    higher confidence (the error allowance is split between looks), in 121 s steps: a
    p99 run with 3,540 s looked at 26 rps 21 times and never showed a pass anywhere. Now
    after MAX_LOOKS looks the confirmation moves to a rate it can still show."""
    settings = SearchSettings(start_rps=10, percentile=90, budget_s=3000,
                              sla_latency_ms=100)

    def confirmation(looks: int):
        looked = [_step(i + 1, 20.0, 160, 12, "inconclusive", phase="extend")
                  for i in range(looks)]
        history = [_step(0, 10.0, 80, 2, "pass"), *looked,
                   _step(looks + 1, 200.0, 1600, 1500, "fail", completed=150.0)]
        rates = pool_by_rate(history, settings.sla)
        last_pass, first_fail = bracket(rates)
        shape = queue_shape(history, settings.sla)
        at_20 = next(r for r in rates if r.offered_rps == 20.0)
        return (_extension_option(at_20, settings, 2800.0, shape, Phase.CONFIRM),
                _confirm(history, rates, last_pass, first_fail, settings, 2800.0, shape))

    option, _ = confirmation(MAX_LOOKS - 1)
    assert option is not None and option.choice.rate == 20.0  # may be extended once more
    option, moved = confirmation(MAX_LOOKS)
    assert option is None
    assert moved is not None and moved.rate != 20.0 and moved.phase == "confirm"


def test_budget_advice_gives_a_floor_and_says_it_is_one():
    """Before: "re-run with --max-test-seconds N or more", where re-runs at N resolved
    0 of 9 (the 1.5 s model) and 1 of 9 (the low-rate p99) in simulated queues."""
    settings = SearchSettings(start_rps=10, percentile=90, budget_s=150, sla_latency_ms=100)
    history = [_step(0, 10.0, 40, 3, "inconclusive"), _step(1, 20.0, 80, 7, "inconclusive"),
               _step(2, 40.0, 320, 300, "fail", completed=30.0)]
    advice = budget_advice(history, settings, 150.0)
    floor = float(advice.split("--max-test-seconds ")[1].split()[0])
    assert floor > 150 and "at the very least" in advice and "several times" in advice
    assert budget_advice([_step(0, 10.0, 400, 0, "pass")], settings, 60.0) is None


# Exponential service, 25 ms mean, 4 slots (160 rps), p90 <= 60 ms: a share that rises
# slowly and then steeply toward the saturation.
_EXP_SKETCH = tuple(float(v) for v in -25.0 * np.log1p(-np.array(SKETCH_PROBABILITIES)))
_BEND_SETTINGS = SearchSettings(start_rps=10, percentile=90, sla_latency_ms=60)


def _bend_shape(**changes) -> QueueShape:
    fields = {"saturation_rps": 160.0, "service_cv2": 1.0, "service_sketch_ms": _EXP_SKETCH,
              "sla_ms": 60.0, "service_samples": 400, "allowed_slow_share": 0.1}
    fields.update(changes)
    return QueueShape(**fields)


def test_bend_follows_the_models_shape_from_the_last_share_to_the_slas():
    """`_bend`: between the last rate measured (40 rps, 6% slow) and a fitted point at
    100 rps, the expected share rises from 6% to the SLA's 10% as the model's curve does:
    monotone, within the two, and below the straight line where the curve is still flat."""
    shares = _bend((40.0, 0.06, 1e-5), 100.0, _BEND_SETTINGS, _bend_shape())
    rates = [rate for rate, _, _ in shares]
    assert rates == sorted(rates) and rates[0] > 40.0 and rates[-1] < 100.0
    values = [share for _, share, _ in shares]
    assert all(0.06 <= share <= 0.1 for share in values)
    assert all(low <= high for low, high in zip(values, values[1:], strict=False))
    at_70 = next(share for rate, share, _ in shares if abs(rate - 70.0) < 1e-9)
    assert at_70 < 0.06 + (0.1 - 0.06) * (70.0 - 40.0) / (100.0 - 40.0)
    # The variance shrinks toward the point, whose share is the SLA's by construction.
    assert all(0 <= variance <= 1e-5 for _, _, variance in shares)


@pytest.mark.parametrize("last, point, shape", [
    ((40.0, 0.06, 1e-5), 100.0, _bend_shape(saturation_rps=None)),  # no model
    ((40.0, 0.06, 1e-5), 100.0, _bend_shape(service_sketch_ms=())),  # no service law
    ((40.0, 0.12, 1e-5), 100.0, _bend_shape()),  # the last share over the SLA's already
    ((100.0, 0.06, 1e-5), 100.0, _bend_shape()),  # nothing between the last rate and point
    ((96.0, 0.06, 1e-5), 100.0, _bend_shape()),  # no confirmation rate between them
])
def test_bend_is_empty_where_there_is_nothing_to_bend(last, point, shape):
    assert _bend(last, point, _BEND_SETTINGS, shape) == []


# A 1.5 s model's latencies (lognormal, mean 1,500 ms, sigma 0.3) as a step's sketch.
_SLOW_MODEL_SKETCH = tuple(
    1500.0 * math.exp(-0.045 + 0.3 * NormalDist().inv_cdf(p)) for p in SKETCH_PROBABILITIES)


def _slow_model_step(index: int, rate: float, requests: int, slow: int, verdict: str,
                     phase: str = "ramp", completed: float | None = None) -> StepResult:
    return replace(_step(index, rate, requests, slow, verdict, phase, completed),
                   latency_sketch_ms=_SLOW_MODEL_SKETCH, latency_cv2=0.094)


def _slow_model_history(sixteen: tuple[int, int]) -> list[StepResult]:
    """A 1.5 s model's ramp (48 slots, saturation 32 rps): 32 rps over the p90's share on
    a few requests, 64 rps overloaded, answers at 33 per second in its short window."""
    requests, slow = sixteen
    return [_slow_model_step(0, 8.0, 60, 7, "inconclusive"),
            _slow_model_step(1, 16.0, requests, slow, "inconclusive"),
            _slow_model_step(2, 32.0, 100, 11, "inconclusive"),
            _slow_model_step(3, 64.0, 200, 200, "fail", completed=33.0)]


def test_navigation_does_not_look_again_at_a_rate_next_to_the_saturation_seen():
    """Before: 32 rps, 0.97 of the 33 answers per second the overloaded step got through,
    leaned to neither side and was looked at again, for 30 s here with a rate below
    leaning to pass and for 56 s with none (a 1.5 s model spent 11 s of its 150 s there on
    average, up to 50 s, in runs that ended without a pass). Now navigation bisects below
    it, and with nothing leaning to pass it looks again at the highest rate below it."""
    settings = SearchSettings(start_rps=1, budget_s=150, sla_latency_ms=2200)
    leaning = _slow_model_history((300, 24))  # 8% of 300 at 16 rps: leans to pass
    choice = next_step(leaning, settings, 50.0)
    assert choice.phase == "bisect" and 16.0 < choice.offered_rps < 32.0
    nothing = _slow_model_history((60, 7))  # 12% of 60: leans nowhere
    choice = next_step(nothing, settings, 50.0)
    assert (choice.phase, choice.offered_rps) == ("extend", 16.0)


def test_a_confirmation_extends_a_measured_rate_with_all_the_budget_a_new_rate_would_get():
    """Before: where no count of requests reached CONFIRM_CHANCE, a rate measured already
    was offered only its bare extension (620 requests more at 23.5 rps, chance 0.52) while
    a new rate beside it got the whole budget (1,255 at 24 rps, chance 0.64), and won,
    though it shares none of the 294 requests measured. Now both get what the budget
    allows (the extension 1,229, chance 0.65)."""
    settings = SearchSettings(start_rps=1, budget_s=150, sla_latency_ms=2200)
    history = [_slow_model_step(0, 16.0, 71, 5, "inconclusive"),
               _slow_model_step(1, 23.5, 294, 22, "inconclusive", phase="bisect"),
               _slow_model_step(2, 64.0, 200, 200, "fail", completed=31.0)]
    rates = pool_by_rate(history, settings.sla)
    shape = queue_shape(history, settings.sla)
    at_23 = next(r for r in rates if r.offered_rps == 23.5)
    option = _extension_option(at_23, settings, 56.7, shape, Phase.CONFIRM)
    most = (56.7 - warmup_for(settings, 23.5, shape)) * 23.5
    assert option is not None and option.choice.requests == pytest.approx(most, abs=1)
    assert option.chance > 0.6
    last_pass, first_fail = bracket(rates)
    chosen = _confirm(history, rates, last_pass, first_fail, settings, 56.7, shape)
    assert chosen.rate == 23.5 and chosen.requests == pytest.approx(most, abs=1)
