"""Statistics are code: the error rates of every claim the measurement makes, checked over
many synthetic runs against simulated queues whose true capacity is computed separately.

Each test drives the real verdict, search and capacity code (`tuner.measure.offline`) against
`tuner.measure.queueing.VirtualEndpoint`, a FIFO queue in front of c slots with a realistic service
time law, under Poisson arrivals: seconds for hundreds of runs.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from tuner.config import TuneConfig
from tuner.measure.analysis import (
    QueueShape,
    Sla,
    StepResult,
    StepSpec,
    Verdict,
    _through,
    best_estimate,
    estimate_capacity,
    fitted_estimate,
    navigation_bracket,
    overloaded,
    point_estimate,
    pool_by_rate,
    summarize_step,
)
from tuner.measure.offline import run_offline, run_offline_seeds
from tuner.measure.queueing import ServiceLaw, VirtualEndpoint, capacity_at_sla, fifo_sojourn_s
from tuner.measure.search import SearchSettings, next_step, step_duration
from tuner.measure.slow_correlation import latency_sketch

# Hundreds of offline runs per claim (spread over the cores, `run_offline_seeds`): minutes
# in all, so `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

# (law, slots, percentile, SLA ms, budget s): a hard knee, a long tail, 5% slow at any load.
SERVERS = {
    "hard-knee": ("constant:20", 4, 90, 100.0, 150.0),
    "long-tail": ("lognormal:40:1.0", 2, 90, 200.0, 150.0),
    "five-percent-slow": ("bimodal:20:0.05:400", 4, 90, 100.0, 150.0),
    # p99 on 2 slots, under 30 rps: a pass needs hundreds of independent requests.
    "low-rate-p99": ("lognormal:50:0.6", 2, 99, 300.0, 240.0),
}
CONFIDENCE = 0.95
TOLERANCE = 0.08  # sampling error of a coverage estimated from RUNS runs
RUNS = 40
# The point estimate's reproduction: fewer runs, a median and a share in goal.
POINT_RUNS = 24
# Runs that must end with a pass within their budget: the claims below are about those.
# The long tail on 2 slots resolves less often since its correlation is modelled as it is
# (about 27 requests per independent one at the capacity; the heavy-traffic formula before
# said 18, and its extra resolutions were passes on too few independent requests): 85% of
# runs resolved in the last full run.
# The low-rate p99 resolved in 35% of runs while the near-misses of its rates far below
# the knee counted as clustered slow requests (`StepResult.evidence_at`), 65% since.
# The 5%-slow server, whose SLA binds at 0.58 of its saturation, resolved 32 of 40 in the
# last full run; it checks that no rate near its knee counts as far below it.
# Since the confirmation is planned by its chance to pass (`search._confirm`; before, it
# was sized to pass at exactly the share expected: a coin flip), 36, 36 and 36 of 40 of
# the long tail, the 5%-slow server and the low-rate p99 resolve (34, 32 and 29 before).
MIN_RESOLVED = {"hard-knee": 0.9, "long-tail": 0.85, "five-percent-slow": 0.85,
                "low-rate-p99": 0.8}


def _truth(law: str, slots: int, percentile: float, sla_ms: float) -> float:
    return capacity_at_sla(ServiceLaw.parse(law), slots, percentile, sla_ms)


def _settings(truth: float, percentile: float, sla_ms: float, budget: float) -> SearchSettings:
    return SearchSettings(start_rps=max(1.0, round(truth / 20)), percentile=percentile,
                          confidence=CONFIDENCE, budget_s=budget, sla_latency_ms=sla_ms)


def _study(name: str) -> tuple[str, int, float, Sla, SearchSettings]:
    """(law, slots, true capacity, SLA, search settings) of one of `SERVERS`."""
    law, slots, percentile, sla_ms, budget = SERVERS[name]
    truth = _truth(law, slots, percentile, sla_ms)
    return (law, slots, truth, Sla(percentile, sla_ms, 0.01, CONFIDENCE),
            _settings(truth, percentile, sla_ms, budget))


@pytest.mark.parametrize("name", ["hard-knee", "long-tail", "five-percent-slow",
                                  "low-rate-p99"])
def test_capacity_interval_covers_the_truth_at_the_stated_confidence(name):
    law, slots, percentile, sla_ms, budget = SERVERS[name]
    truth = _truth(law, slots, percentile, sla_ms)
    sla = Sla(percentile, sla_ms, 0.01, CONFIDENCE)
    settings = _settings(truth, percentile, sla_ms, budget)
    covered = basis_ok = resolved = 0
    for run in run_offline_seeds(law, slots, settings, sla, range(RUNS)):
        assert run.load_seconds <= budget + 1e-6
        if run.capacity is None:
            continue  # the run said it could not resolve: no claim made
        resolved += 1
        low, high = run.capacity.ci
        basis_ok += low <= truth
        covered += low <= truth <= (high if high is not None else np.inf)
    assert resolved >= MIN_RESOLVED[name] * RUNS
    # The target rests on the lower end: it must not be above the truth more often than
    # the confidence allows; the whole interval must cover the truth as often.
    assert basis_ok / resolved >= CONFIDENCE - TOLERANCE
    assert covered / resolved >= CONFIDENCE - TOLERANCE


def _steps_at(law: str, slots: int, rate: float, seconds: float, count: int, seed: int,
              pause_s: float = 0.0):
    """`count` consecutive steps at one rate; the first (queue filling) is dropped."""
    endpoint = VirtualEndpoint(ServiceLaw.parse(law), slots, seed=seed)
    endpoint.run_step(rate, 30.0)  # reach the steady state
    for _ in range(count):
        yield endpoint.run_step(rate, seconds, pause_s)


@pytest.mark.parametrize("name", ["long-tail", "five-percent-slow"])
def test_a_truly_sustainable_step_fails_at_most_5_percent_of_the_time(name):
    law, slots, percentile, sla_ms, _ = SERVERS[name]
    truth = _truth(law, slots, percentile, sla_ms)
    sla = Sla(percentile, sla_ms, 0.01, CONFIDENCE)
    rate = 0.8 * truth
    settings = _settings(truth, percentile, sla_ms, 150.0)
    duration = step_duration(rate, settings)
    spec = StepSpec(0, rate, duration, settings.warmup_s, "bisect")
    verdicts = [summarize_step(spec, s["intended_s"], s["completed_s"], s["latency_ms"],
                               s["ok"], sla).verdict
                for s in _steps_at(law, slots, rate, duration, 200, seed=7)]
    false_fails = sum(v is Verdict.FAIL for v in verdicts) / len(verdicts)
    assert false_fails <= 0.05


def _counted_steps(shares: list[float], requests: int, rng: np.random.Generator
                   ) -> list[StepResult]:
    """One step of `requests` independent requests per rate 20, 21, ... rps, each slow with
    the rate's share, run in a random order after a clear fail at 40 rps (an endpoint
    saturating at 100): a step may land between a rate and the rates pooled with it."""
    steps = [StepResult(0, "ramp", 40.0, 40.0, 1000, 0, 0.0, 500, 900, 990, 900, 600, 10.0,
                        5.0, Verdict.FAIL, completed_rps=100.0)]
    for index in rng.permutation(len(shares)):
        rate = 20.0 + index
        slow = int(rng.binomial(requests, shares[index]))
        steps.append(StepResult(len(steps), "bisect", rate, rate, requests, 0, 0.0, 50, 90,
                                150, 90, slow, 10.0, 5.0, Verdict.INCONCLUSIVE,
                                completed_rps=rate))
    return steps


def test_pooling_the_rates_above_keeps_false_passes_within_the_confidence():
    """An inconclusive rate passes on its requests and those of the consecutive rates above
    it (`analysis._supported_from_above`): a pool of k steps is one more look each, held
    to alpha/2^k, judged as the steps came (a pass once shown stays). Six rates, one
    600-request step each in random order, all exactly at the SLA's share (the worst
    case): the lowest passes in 3.7% of 2000 runs (2.3% with no pooling; 8.9% if every
    pool were held to one look's alpha/2). Where the shares are 8% it passes in 9 of 10
    runs, where its own step alone shows the SLA in about a third. (Any of the six
    passes more often, with or without pooling: each rate is its own test; the claim the
    target rests on, the interval's lower end, is checked end to end above.)"""
    sla = Sla(90, 100.0, 0.01, CONFIDENCE)
    rng = np.random.default_rng(5)
    runs = 2000
    false_passes = sum(
        pool_by_rate(_counted_steps([0.10] * 6, 600, rng), sla)[0].verdict is Verdict.PASS
        for _ in range(runs))
    assert false_passes / runs <= 1 - CONFIDENCE
    pooled = alone = 0
    for _ in range(200):
        steps = _counted_steps([0.08] * 6, 600, rng)
        pooled += pool_by_rate(steps, sla)[0].verdict is Verdict.PASS
        lowest = next(step for step in steps if step.offered_rps == 20.0)
        alone += pool_by_rate([steps[0], lowest], sla)[0].verdict is Verdict.PASS
    assert pooled >= 0.8 * 200 and alone <= 0.5 * 200


@pytest.mark.parametrize("law,slots,utilisation", [
    ("bimodal:20:0.05:400", 4, 0.6),  # stationary, bimodal
    ("lognormal:40:1.0", 2, 0.7),  # stationary, long-tailed
    ("lognormal:40:1.5", 8, 0.8),  # a heavier tail, many slots
])
def test_stationary_bimodal_or_long_tailed_latency_is_not_called_unstable(law, slots,
                                                                         utilisation):
    service = ServiceLaw.parse(law)
    rate = utilisation * service.saturation_rps(slots)
    sla = Sla(90, 10 * service.average_ms, 0.01, CONFIDENCE)
    spec = StepSpec(0, rate, 8.0, 1.0, "bisect")
    results = [summarize_step(spec, s["intended_s"], s["completed_s"], s["latency_ms"],
                              s["ok"], sla)
               for s in _steps_at(law, slots, rate, 8.0, 300, seed=3)]
    alarms = sum(r.unstable is not None for r in results) / len(results)
    assert alarms <= 0.01


@pytest.mark.parametrize("law,slots", [("constant:200", 32), ("lognormal:40:0.5", 4)])
def test_a_5_percent_overload_is_caught(law, slots):
    service = ServiceLaw.parse(law)
    rate = 1.05 * service.saturation_rps(slots)
    sla = Sla(90, 2.5 * service.average_ms, 0.01, CONFIDENCE)
    caught = 0
    for seed in range(40):
        endpoint = VirtualEndpoint(service, slots, seed=seed)
        spec = StepSpec(0, rate, 6.0, 1.0, "bisect")
        samples = endpoint.run_step(rate, 6.0)
        result = summarize_step(spec, samples["intended_s"], samples["completed_s"],
                                samples["latency_ms"], samples["ok"], sla)
        caught += result.verdict is not Verdict.PASS
    assert caught >= 38


# --- the reproductions ------------------------------------------------------------

def test_five_percent_slow_requests_no_longer_sink_the_capacity():
    """Before: 22% of runs ended with no passing step, silently, and the median last pass
    was 26 rps of 100. Now the point estimate is near the truth, and a run whose budget
    could not show a pass says so and what budget would (a fifth of runs at 150 s while
    the confirmation was sized to pass at exactly the share expected; a tenth since it is
    planned by its chance to pass)."""
    law, slots, truth, sla, settings = _study("five-percent-slow")
    points, missing = [], 0
    for run in run_offline_seeds(law, slots, settings, sla, range(RUNS)):
        if run.capacity is None:
            missing += 1
            assert run.advice and "--max-test-seconds" in run.advice
        else:
            points.append(run.capacity.max_sustainable_rps / truth)
    assert missing <= 0.15 * RUNS
    assert np.median(points) >= 0.8


def test_a_low_rate_p99_point_is_not_stuck_where_the_samples_ran_out():
    """Before: the point stopped at the first rate above the last pass that leaned to
    neither side (no credit beyond it): median -20% of the truth, 4 of 29 resolved runs
    within issue F's -10%..+3% (offline, 40 seeds). The queue model fitted to every rate
    carries it on to where the fit puts the crossing (`curve_fit`): median about -6%, about
    19 of 29. The basis (the interval's lower end) is untouched: the coverage test above."""
    law, slots, truth, sla, settings = _study("low-rate-p99")
    points, fitted = [], 0
    for run in run_offline_seeds(law, slots, settings, sla, range(POINT_RUNS)):
        if run.capacity is None:
            continue
        points.append(run.capacity.max_sustainable_rps / truth)
        # The fit may lie below the line now, never the point below the last pass.
        assert run.capacity.max_sustainable_rps >= run.capacity.last_pass_rps
        rates = pool_by_rate(run.steps, sla)
        low, high = navigation_bracket(rates, sla)
        if run.capacity.method.startswith("queue model"):
            fitted += 1
            # Only with a rate measured above the highest leaning to pass, and never past
            # a rate above it whose share is over the SLA, nor past the first fail.
            assert high is not None
            over = [r.offered_rps for r in rates if r.offered_rps > low.offered_rps
                    and r.evidence.slow_share > 1 - sla.quantile]
            assert run.capacity.max_sustainable_rps <= min(over, default=math.inf)
            assert run.capacity.max_sustainable_rps <= run.capacity.first_fail_rps
        elif high is None:
            # Nothing measured above the highest rate leaning to pass: no crossing to fit.
            assert fitted_estimate(run.steps, rates, sla, math.inf) is None
    assert fitted >= 0.3 * len(points)  # the case this is about
    in_goal = sum(0.9 <= point <= 1.03 for point in points)
    assert len(points) >= 0.5 * POINT_RUNS
    assert 0.9 <= np.median(points) <= 1.03
    assert in_goal >= 0.4 * len(points)
    # What the fit may add is bounded by the rates measured over the SLA: no wild overshoot.
    assert max(points) <= 1.12


SLOW_MODEL = ("lognormal:1500:0.3", 48)
SLOW_MODEL_SLA = Sla(90, 2200.0, 0.01, CONFIDENCE)


def _slow_model_steps(seed: int) -> list:
    """Fixed steps against the 1.5 s model: a low rate, a long pass at 16 rps, 32 rps near
    its saturation, and 64 rps beyond it."""
    endpoint = VirtualEndpoint(ServiceLaw.parse(SLOW_MODEL[0]), SLOW_MODEL[1], seed=seed)
    steps, pause = [], 0.0
    for index, (rate, seconds) in enumerate([(4.0, 30.0), (16.0, 150.0), (32.0, 20.0),
                                             (64.0, 10.0)]):
        spec = StepSpec(index, rate, seconds, 5.0, "ramp")
        samples = endpoint.run_step(rate, seconds, pause)
        steps.append(summarize_step(spec, samples["intended_s"], samples["completed_s"],
                                    samples["latency_ms"], samples["ok"], SLOW_MODEL_SLA))
        pause = min(endpoint.backlog_s(), endpoint.timeout_s) + 2.0
    return steps


def test_a_slow_models_point_follows_the_bend_not_a_straight_line():
    """A 1.5 s model on 48 slots: 7.7% of requests are over the p90 SLA at low load, about
    8% at 80% of the capacity, 10% at it, then the share shoots up. A straight line from a
    pass at 16 rps to the share measured at 32 rps crossed at 16-26 rps (median 0.71 of
    the truth, 28.6 rps); the queue model fitted to every rate follows the bend
    (`curve_fit`): offline that model's median point went from -15% to -1% (README). The
    basis (the last pass) is untouched."""
    sla = SLOW_MODEL_SLA
    truth = capacity_at_sla(ServiceLaw.parse(SLOW_MODEL[0]), SLOW_MODEL[1], 90, 2200.0)
    points, lines = [], []
    for seed in range(8):
        steps = _slow_model_steps(seed)
        capacity = estimate_capacity(steps, sla)
        assert capacity.last_pass_rps == 16.0
        assert capacity.max_sustainable_rps <= 32.0
        points.append(capacity.max_sustainable_rps / truth)
        lines.append(best_estimate(pool_by_rate(steps, sla), sla) / truth)
    assert np.median(lines) < 0.85  # what the straight line says: the reproduction
    # The fit's conservative end is no bound (the model's shape comes from a low-load
    # sketch and the saturation seen): here 0.93-1.07 of the truth, median 1.02, three of
    # the eight above issue F's +3%.
    assert 0.95 <= np.median(points) <= 1.05
    assert all(0.9 <= point <= 1.08 for point in points)


def test_the_confirmation_is_planned_around_the_reported_point():
    """The search places its confirmation at fractions of the point the report gives
    (`analysis.point_estimate`), not of the straight line's, and expects the slow share
    there to follow the fitted model's bend (`search._bend`): on the 1.5 s model the line
    from the pass at 16 rps (0.56 of the truth) to the share at 32 rps crossed at 0.58-0.91
    of the truth, so the confirmation went to 0.59-0.73 and in 2 of 8 seeds to none at all
    (the line's point was within the precision of the pass); at fractions of the fitted
    point but with a straight line from the pass's share to the SLA's at the point, to
    0.61-0.75 (median 0.70). Now 0.64-0.87, median 0.80, all 8 above the pass and below
    the fitted point. Offline (`benchmarks/offline_zoo.py`, README) nine cases x 40 seeds
    in goal 249 -> 254 (the low-rate p99 22 -> 27)."""
    sla = SLOW_MODEL_SLA
    truth = capacity_at_sla(ServiceLaw.parse(SLOW_MODEL[0]), SLOW_MODEL[1], 90, 2200.0)
    settings = SearchSettings(start_rps=4.0, percentile=90, budget_s=300.0,
                              sla_latency_ms=2200.0, confidence=CONFIDENCE)
    planned = []
    for seed in range(8):
        steps = _slow_model_steps(seed)
        rates = pool_by_rate(steps, sla)
        point, fitted = point_estimate(steps, rates, sla)
        assert fitted  # the case this is about: the fit sets the point
        spec = next_step(steps, settings, used_s=210.0)
        assert spec is not None and spec.phase == "confirm"
        assert 16.0 < spec.offered_rps <= point
        planned.append(spec.offered_rps / truth)
    assert np.median(planned) >= 0.76


LONG_TAIL_P99 = ("lognormal:30:1.0", 8, 99, 250.0, 240.0)
P99_POINT_RUNS = 12  # 30 s on 2 cores: here 2 over +3% against the old rule's 6


def test_a_p99_long_tails_point_is_the_fit_not_a_short_windows_line():
    """Near a p99's knee the slow share of a window of seconds is skewed: most short
    windows at a rate over the capacity look sustainable, and the straight line through
    the rate above the highest leaning to pass read the point off one of them (until the
    thirteenth session the fit set the point only where it lay above that line): offline,
    40 seeds, the point was over issue F's +3% in 22 runs (median +3.7%). The queue model
    fitted to every rate's requests sets the point wherever there is a fit
    (`analysis.point_estimate`): 8 of 40 (median +0.2%). Scored here both ways on the
    same 12 runs."""
    law, slots, percentile, sla_ms, budget = LONG_TAIL_P99
    truth = _truth(law, slots, percentile, sla_ms)
    sla = Sla(percentile, sla_ms, 0.01, CONFIDENCE)
    settings = _settings(truth, percentile, sla_ms, budget)
    points, lines = [], []
    for run in run_offline_seeds(law, slots, settings, sla, range(P99_POINT_RUNS)):
        if run.capacity is None or run.capacity.first_fail_rps is None:
            continue
        rates = pool_by_rate(run.steps, sla)
        points.append(run.capacity.max_sustainable_rps / truth)
        # The rule before: the line, or the fit where that was higher (the same ceiling:
        # the first fail, or what an overloaded step got through if less).
        first_fail = run.capacity.first_fail_rps
        ceiling = min(first_fail, _through(run.steps, first_fail))
        line = max(run.capacity.last_pass_rps, min(best_estimate(rates, sla), ceiling))
        fitted = fitted_estimate(run.steps, rates, sla, ceiling) or 0.0
        lines.append(max(line, fitted) / truth)
    assert len(points) >= 0.8 * P99_POINT_RUNS
    over = sum(point > 1.03 for point in points)
    assert sum(line > 1.03 for line in lines) >= over + 3  # the reproduction
    assert over <= 0.3 * len(points)
    assert -0.06 <= np.median(points) - 1 <= 0.03


FIVE_PCT_FIT_RUNS = 48  # about 30 s on 2 cores; some 18 of them without an overloaded step


def test_a_5pct_slow_servers_point_is_fitted_when_no_step_was_overloaded():
    """The ramp's failing step on a 5%-slow server (4 slots, about 103 rps) often keeps up:
    at 96 rps most requests are slow but all are answered. Until the seventeenth session
    the queue model needed a step that could not keep up (`queue_shape`'s sketch), so there
    was no fit and the point fell back to the line between two measured rates: offline, 48
    of 160 runs, 14 of them in issue F's -10%..+3%, 11 over +3%. The fit now runs on the
    low-load sample at the saturation seen, a lower bound the fitted rate scale makes up
    (`fitted_estimate`): 26 of those 48 in goal, 1 over. Here the fitted point against the
    line (the rule before, with its ceiling) read off the same runs' steps."""
    law, slots, truth, sla, settings = _study("five-percent-slow")
    runs, fitted = 0, 0
    fitted_errors, line_errors = [], []
    for run in run_offline_seeds(law, slots, settings, sla, range(FIVE_PCT_FIT_RUNS)):
        capacity = run.capacity
        if capacity is None or capacity.first_fail_rps is None:
            continue
        if any(s.verdict is Verdict.FAIL and overloaded(s) for s in run.steps):
            continue  # a step could not keep up: the model as before
        runs += 1
        fitted += capacity.method.startswith("queue model")
        rates = pool_by_rate(run.steps, sla)
        first_fail = capacity.first_fail_rps
        ceiling = min(first_fail, _through(run.steps, first_fail))
        line = max(capacity.last_pass_rps, min(best_estimate(rates, sla), ceiling))
        fitted_errors.append(capacity.max_sustainable_rps / truth - 1)
        line_errors.append(line / truth - 1)

    def in_goal(errors: list[float]) -> int:
        return sum(-0.10 <= error <= 0.03 for error in errors)

    def over(errors: list[float]) -> int:
        return sum(error > 0.03 for error in errors)

    assert runs >= 0.2 * FIVE_PCT_FIT_RUNS  # the case this is about
    assert fitted >= 0.8 * runs  # the reproduction: none before
    assert over(fitted_errors) <= over(line_errors)
    assert in_goal(fitted_errors) >= in_goal(line_errors)


def test_the_fitted_point_keeps_to_the_error_rate_limit():
    """The queue model knows slow requests only. With 4% errors at 32 rps (the SLA allows
    1%) the error rate crosses its limit at 20 rps between the pass at 16 and 32: the point
    stays there, as the interpolation's does (the first version of the wider fit put it at
    30.5 rps)."""
    sla = SLOW_MODEL_SLA
    steps = _slow_model_steps(1)
    near = steps[2]
    errors = round(0.04 * near.requests)
    steps[2] = replace(near, errors=errors, slow_requests=min(near.requests,
                                                              near.slow_requests + errors))
    capacity = estimate_capacity(steps, sla)
    assert steps[1].errors == 0
    crossing = 16.0 + 0.01 / (errors / near.requests) * 16.0  # about 20 rps
    assert best_estimate(pool_by_rate(steps, sla), sla) <= crossing + 1e-9
    assert capacity.last_pass_rps == 16.0
    assert 16.0 <= capacity.max_sustainable_rps <= crossing + 1e-9


def test_a_slow_model_is_not_judged_saturated_at_a_low_rate():
    """1.5 s per request, 64 slots: 20 rps is a fraction of what it sustains. Before,
    answers still in flight at the window's end were counted missing ("answered 18.3 of
    20") and capacity was capped at the first ramp step."""
    sla = Sla(90, 3000, 0.01, CONFIDENCE)
    endpoint = VirtualEndpoint(ServiceLaw.parse("lognormal:1500:0.3"), 64, seed=1)
    spec = StepSpec(0, 20.0, 15.0, 5.0, "ramp")
    samples = endpoint.run_step(20.0, 15.0)
    result = summarize_step(spec, samples["intended_s"], samples["completed_s"],
                            samples["latency_ms"], samples["ok"], sla)
    assert result.verdict is Verdict.PASS
    assert not any("saturated" in r for r in result.reasons)


def test_low_rate_p99_steps_last_as_long_as_the_percentile_needs():
    """Before: max_step_s = 15 capped every step, so no rate below ~20 rps could pass p99."""
    settings = SearchSettings(percentile=99, confidence=0.95)
    assert step_duration(6.0, settings) - settings.warmup_s >= 50.0
    assert TuneConfig(endpoint="e", sla_latency_ms=100).max_step_seconds >= 60


def test_linear_search_extends_an_inconclusive_stair_instead_of_stopping():
    law, slots, percentile, sla_ms, _ = SERVERS["long-tail"]
    sla = Sla(percentile, sla_ms, 0.01, CONFIDENCE)
    settings = SearchSettings(strategy="linear", start_rps=4, linear_step_rps=4,
                              percentile=percentile, budget_s=200, sla_latency_ms=sla_ms,
                              min_step_s=2.0, max_step_s=4.0)
    run = run_offline(VirtualEndpoint(ServiceLaw.parse(law), slots, seed=2), settings, sla)
    assert run.steps[0].verdict is Verdict.INCONCLUSIVE  # 4 rps for 3 s: too few requests
    assert len(run.steps) > 2 and run.steps[1].offered_rps == run.steps[0].offered_rps
    assert run.capacity is not None


def test_errors_count_in_the_reported_percentile_and_reasons():
    """Before: timeouts counted as slow in the test but were left out of the percentile,
    so reasons read "p99 50 ms over the 100 ms SLA"."""
    sla = Sla(99, 100, 0.5, CONFIDENCE)
    intended = np.arange(0, 10, 0.01)
    latency = np.full(intended.size, 50.0)
    ok = np.ones(intended.size, dtype=bool)
    ok[::20] = False  # 5% timeouts
    spec = StepSpec(0, 100, 10.0, 1.0, "ramp")
    result = summarize_step(spec, intended, intended + latency / 1000, latency, ok, sla)
    assert result.verdict is Verdict.FAIL
    assert result.sla_percentile_ms == np.inf
    assert any("errors included" in r for r in result.reasons)


def test_poisson_arrivals_are_the_default():
    assert TuneConfig(endpoint="e", sla_latency_ms=100).arrivals == "poisson"


def test_bursty_arrivals_sustain_less_than_even_ones():
    """The definition's basis: 1 slot x 60 ms, p99 <= 200 ms sustains 16.6 rps of evenly
    spaced requests but only ~6.1 of Poisson ones."""
    law = ServiceLaw.parse("constant:60")
    poisson = capacity_at_sla(law, 1, 99, 200)
    uniform = capacity_at_sla(law, 1, 99, 200, arrivals="uniform")
    assert poisson == pytest.approx(6.1, rel=0.05)
    assert uniform == pytest.approx(16.6, rel=0.03)


def _window_variance_ratio(law: str, slots: int, rate: float, sla_ms: float,
                           windows: int = 300, window_s: float = 20.0) -> float:
    """Truth for the correlation model, by brute force: the variance of slow counts over
    many windows of one long run, against the binomial's."""
    rng = np.random.default_rng(11)
    per_window = int(rate * window_s)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, per_window * (windows + 10)))
    service = ServiceLaw.parse(law).sample_s(rng, arrivals.size)
    slow = (fifo_sojourn_s(arrivals, service, slots)[per_window * 10:] * 1000 > sla_ms)
    counts = slow.reshape(windows, per_window).sum(axis=1)
    share = counts.sum() / counts.size / per_window
    return counts.var(ddof=1) / (per_window * share * (1 - share))


# (law, slots, SLA ms, rate): slowness from service alone (48 slots at 84% of saturation; a
# p99 over a long tail at 75%) and slowness from slow services that make others queue (5%
# slow). Closer to a p99's knee (longtail-p99 above ~215 rps) slow requests come in rare
# bursts that 20 s windows and the model's 60,000 simulated requests both mostly miss:
# README's "Known limits" says so.
CORRELATION_CASES = {
    "slow-model": ("lognormal:1500:0.3", 48, 2200.0, 27.0),
    "longtail-p99": ("lognormal:30:1.0", 8, 250.0, 200.0),
    "five-percent-slow": ("bimodal:20:0.05:400", 4, 100.0, 55.0),
}


@pytest.mark.parametrize("name", sorted(CORRELATION_CASES))
def test_the_modelled_correlation_of_slow_requests_is_near_the_truth_and_not_below(name):
    """Issue F: the heavy-traffic formula counted 5-30x too much correlation where the queue
    is mostly empty (116 instead of 2 for the 1.5 s model), so no affordable test could
    pass; too little, and passes are claimed that do not hold. The simulated model, fed
    the answers of low-load steps as the tool measures them, stays within [0.8, 2.5]x."""
    law, slots, sla_ms, rate = CORRELATION_CASES[name]
    truth = _window_variance_ratio(law, slots, rate, sla_ms)
    rng = np.random.default_rng(3)
    answers_ms = ServiceLaw.parse(law).sample_s(rng, 600) * 1000
    saturation = slots / (ServiceLaw.parse(law).average_ms / 1000)
    shape = QueueShape(saturation, 1.0, latency_sketch(answers_ms), sla_ms, 600)
    modelled = shape.correlation(rate)
    assert 0.8 * truth <= modelled <= 2.5 * max(truth, 1.0), (truth, modelled)
