import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tuner.errors import NoPassingStepError
from tuner.measure.analysis import (
    Sla,
    StepResult,
    StepSpec,
    autocorrelation_time,
    beyond_independent_noise,
    calibrated_correlation,
    derive_target,
    estimate_capacity,
    navigation_bracket,
    pool_by_rate,
    summarize_samples,
    summarize_step,
)

SLA = Sla(percentile=90, latency_ms=100, max_error_rate=0.01)


def synthetic(rate, duration=6.0, latency=20.0, error_every=0, rising=0.0, capacity=None):
    """Requests of one step: uniform arrivals, fixed or rising latency, optional errors."""
    intended = np.arange(0, duration, 1.0 / rate)
    lat = latency + rising * intended
    if capacity is not None and rate > capacity:
        # A queue: completions at capacity, latency grows with the backlog.
        done = np.arange(len(intended)) / capacity
        lat = np.maximum(latency, (done - intended) * 1000 + latency)
    ok = np.ones(len(intended), dtype=bool)
    if error_every:
        ok[::error_every] = False
    completed = intended + lat / 1000.0
    return intended, completed, lat, ok


def step(rate, index=0, duration=6.0, **kw):
    spec = StepSpec(index, rate, duration, 1.0, "ramp")
    return summarize_step(spec, *synthetic(rate, duration, **kw), SLA)


def test_fast_steady_step_passes():
    result = step(100)
    assert result.verdict == "pass"
    assert result.achieved_rps == pytest.approx(100, rel=0.03)
    assert result.p90_ms == pytest.approx(20)
    assert result.requests == 500


def test_saturated_step_fails_even_if_never_passed():
    result = step(300, capacity=200)
    assert result.verdict == "fail"
    assert any("over the SLA" in r or "unstable" in r for r in result.reasons)


def test_errors_above_limit_fail():
    result = step(100, error_every=20)  # 5% errors
    assert result.verdict == "fail"
    assert any("error rate" in r for r in result.reasons)


def test_rising_latency_is_unstable():
    result = step(100, latency=20, rising=10.0)  # +50 ms over the window: < SLA but rising
    assert result.verdict == "fail"
    assert any("unstable" in r for r in result.reasons)


def test_slow_step_fails_on_latency():
    result = step(100, latency=150)
    assert result.verdict == "fail"
    assert any("SLA" in r for r in result.reasons)


def test_too_few_requests_are_inconclusive_not_failed():
    result = step(2, duration=5.0)  # 8 requests cannot show p90 at 95%
    assert result.verdict == "inconclusive"
    assert result.slow_requests == 0


def test_warmup_is_excluded():
    intended, completed, lat, ok = synthetic(100)
    lat = lat.copy()
    lat[intended < 1.0] = 5000  # a cold start in the first second
    spec = StepSpec(0, 100, 6.0, 1.0, "ramp")
    assert summarize_step(spec, intended, intended + lat / 1000, lat, ok, SLA).verdict == "pass"


def test_summarize_samples_groups_by_step():
    rows = []
    for index, rate in enumerate((50, 100)):
        intended, completed, lat, ok = synthetic(rate)
        rows.append(pd.DataFrame({"step": index, "intended_s": intended,
                                  "completed_s": completed, "latency_ms": lat, "ok": ok}))
    specs = [StepSpec(0, 50, 6.0, 1.0, "ramp"), StepSpec(1, 100, 6.0, 1.0, "ramp")]
    results = summarize_samples(specs, pd.concat(rows), SLA)
    assert [r.requests for r in results] == [250, 500]


def fake(rate, verdict, p90=20.0, achieved=None, errors=0, slow=None, completed=None):
    """A step whose counts agree with its verdict (verdicts are re-derived per rate)."""
    requests = 10 if verdict == "inconclusive" else 1000
    if slow is None:
        slow = {"pass": 20, "fail": 600, "inconclusive": 0}[verdict]
    return StepResult(index=0, phase="ramp", offered_rps=rate,
                      achieved_rps=rate if achieved is None else achieved, requests=requests,
                      errors=errors, error_rate=errors / requests, p50_ms=p90 / 2, p90_ms=p90,
                      p99_ms=p90 * 2, sla_percentile_ms=p90, slow_requests=slow,
                      duration_s=6, warmup_s=1, verdict=verdict,
                      completed_rps=2 * rate if completed is None else completed)


def test_capacity_interpolates_between_last_pass_and_first_fail():
    steps = [fake(100, "pass", slow=10), fake(200, "pass", slow=50),
             fake(300, "fail", slow=150)]
    capacity = estimate_capacity(steps, SLA)
    # slow share 5% at 200 and 15% at 300: crosses the allowed 10% halfway
    assert capacity.max_sustainable_rps == pytest.approx(250)
    assert (capacity.last_pass_rps, capacity.first_fail_rps) == (200, 300)


def test_capacity_never_exceeds_what_the_failing_step_achieved():
    steps = [fake(150, "pass", p90=20), fake(400, "fail", p90=2000, completed=210)]
    assert estimate_capacity(steps, SLA).max_sustainable_rps <= 210


def test_a_pass_above_the_first_fail_is_noise():
    steps = [fake(100, "pass"), fake(200, "fail", p90=500), fake(300, "pass")]
    capacity = estimate_capacity(steps, SLA)
    assert capacity.last_pass_rps == 100
    assert capacity.max_sustainable_rps < 200


def test_no_failing_load_reports_the_highest_pass():
    capacity = estimate_capacity([fake(100, "pass"), fake(200, "pass")], SLA)
    assert capacity.max_sustainable_rps == 200
    assert capacity.first_fail_rps is None


def test_no_passing_step_is_a_clear_error():
    with pytest.raises(NoPassingStepError, match="no load step showed the SLA"):
        estimate_capacity([fake(10, "fail", p90=900)], SLA)


def test_low_rate_inconclusive_steps_do_not_bound_capacity():
    steps = [fake(5, "inconclusive"), fake(10, "pass"), fake(20, "fail", p90=300)]
    assert estimate_capacity(steps, SLA).last_pass_rps == 10


def _counted(rate, requests, slow, index, errors=0):
    """A step of `requests` independent requests, `slow` of them over the SLA (errors
    included), all answered."""
    return replace(fake(rate, "pass"), requests=requests, slow_requests=slow, index=index,
                   verdict="inconclusive", answered=requests, errors=errors,
                   error_rate=errors / requests)


def test_an_inconclusive_rate_passes_on_the_requests_of_the_rates_just_above_it():
    """A slow share cannot fall as load rises: 7.8% of 600 requests at 20 rps do not
    show a p90 alone, but with the 600 at 21 rps (no lower share there) they do, at 20."""
    fail = fake(30, "fail", completed=100)
    alone = [_counted(20, 600, 47, 0), replace(fail, index=1)]
    with pytest.raises(NoPassingStepError):
        estimate_capacity(alone, SLA)
    steps = [_counted(20, 600, 47, 0), _counted(21, 600, 47, 1), replace(fail, index=2)]
    rates = pool_by_rate(steps, SLA)
    assert [str(r.verdict) for r in rates] == ["pass", "inconclusive", "fail"]
    assert "with the rates up to 21 rps" in rates[0].reasons[0]
    capacity = estimate_capacity(steps, SLA)
    assert capacity.last_pass_rps == 20
    assert "the last pass shown with the requests of the rates up to 21 rps" in capacity.method


def test_a_failing_rate_ends_the_pool_from_above():
    """The rates pooled with an inconclusive one are the consecutive ones above it up to
    the first that failed, even one whose steps cannot count for the SLA (its queue had
    no time to settle): beyond a fail the shares are over the SLA's, and a pool that
    skipped the fail would reach past the capacity on the steps that happened to be fast."""
    unsettled_fail = replace(fake(21, "fail", completed=100), index=1, warmup_s=0.0)
    steps = [_counted(20, 600, 47, 0), unsettled_fail,
             _counted(22, 600, 40, 2), _counted(23, 600, 40, 3)]
    assert str(pool_by_rate(steps, SLA)[0].verdict) == "inconclusive"


def test_a_pass_from_the_rates_above_stays_when_a_step_runs_between_them_later():
    """A confirmation run later between a pooled pass and the rates that carried it adds
    to the pool and a look: it must not take back the pass the search planned around."""
    fail = fake(30, "fail", completed=100)
    shown = [_counted(20, 600, 47, 0), _counted(22, 600, 47, 1), replace(fail, index=2)]
    assert estimate_capacity(shown, SLA).last_pass_rps == 20
    later = [*shown, _counted(21, 600, 55, 3)]
    assert estimate_capacity(later, SLA).last_pass_rps == 20
    # The same steps in the other order never showed a pass at 20: none is claimed.
    with pytest.raises(NoPassingStepError):
        estimate_capacity([later[0], later[3], later[1], later[2]], SLA)


def test_a_rate_over_the_error_limit_or_leaning_to_fail_is_not_lifted_by_the_rates_above():
    """Errors need not rise with load (a cold start, an awkward payload), and a rate whose
    own share leans over the SLA contradicts the monotone share the pooling assumes."""
    fail = replace(fake(30, "fail", completed=100), index=9)
    above = [_counted(21, 600, 40, 1), _counted(22, 600, 40, 2)]
    for low in (_counted(20, 600, 50, 0, errors=8), _counted(20, 100, 15, 0)):
        assert str(pool_by_rate([low, *above, fail], SLA)[0].verdict) == "inconclusive"
    assert str(pool_by_rate([_counted(20, 600, 50, 0), *above, fail], SLA)[0].verdict) == "pass"


def test_target_is_per_minute_per_instance_times_safety_factor():
    rec = derive_target(200.0, 1, 0.5)
    assert rec.max_rps_per_instance == 200.0
    assert rec.target_invocations_per_instance == 6000.0  # 200 rps * 60 s * 0.5


def test_target_divides_by_instances_under_test():
    rec = derive_target(300.0, 3, 0.5)
    assert rec.max_rps_per_instance == pytest.approx(100.0)
    assert rec.target_invocations_per_instance == pytest.approx(3000.0)


@pytest.mark.parametrize("factor", [0, -0.1, 1.01, math.nan])
def test_safety_factor_outside_range_is_rejected(factor):
    with pytest.raises(ValueError):
        derive_target(100.0, 1, factor)


def test_capacity_is_capped_by_failing_step_throughput_even_just_above_last_pass():
    settled = replace(fake(180, "pass", p90=25), warmup_s=20.0)
    steps = [settled, fake(240, "fail", p90=120, completed=201.0)]
    assert 180 <= estimate_capacity(steps, SLA).max_sustainable_rps <= 201


def test_a_pass_whose_queue_had_no_time_to_settle_is_not_a_pass():
    """Near saturation a queue started from empty takes long to fill: a short warm-up
    passes loads the endpoint cannot sustain."""
    steps = [fake(200, "pass", p90=25, completed=200.0),
             fake(240, "fail", p90=120, completed=201.0)]
    with pytest.raises(NoPassingStepError, match="200 \\(inconclusive\\)"):
        estimate_capacity(steps, SLA)


def test_aborted_step_fails_with_its_reason():
    spec = StepSpec(0, 100, 2.5, 1.0, "ramp", abort_reason="error rate 50% above 20%")
    result = summarize_step(spec, *synthetic(100, duration=2.5), SLA)
    assert result.verdict == "fail"
    assert result.reasons[0].startswith("aborted after 2.5 s: error rate 50%")


def test_fast_errors_are_errors_not_saturation():
    result = step(100, error_every=2)
    assert any("error rate" in r for r in result.reasons)
    assert not any("saturated" in r for r in result.reasons)
    assert result.achieved_rps == pytest.approx(50, rel=0.05)  # goodput


def test_capacity_interval_brackets_the_estimate():
    steps = [fake(200, "pass", p90=60), fake(300, "fail", p90=140, achieved=280)]
    capacity = estimate_capacity(steps, SLA)
    low, high = capacity.ci
    assert (low, high) == (200, 300)
    assert low <= capacity.max_sustainable_rps <= high


def test_generator_limit_flags_cpu_and_send_lag():
    from tuner.measure.analysis import generator_limit

    assert generator_limit([95.0, 40.0], [1.0, 1.0], SLA) == "load generator CPU at 95% of a core"
    assert "late" in generator_limit([50.0], [30.0], SLA)  # 30 ms > 20% of a 100 ms SLA
    assert generator_limit([50.0, None], [2.0, None], SLA) is None


def test_small_overload_is_caught_even_when_latency_stays_under_the_sla():
    """5% over a 32x200 ms server: the queue grows 50 ms/s; 3 s is too short to breach
    a 500 ms SLA, but the trend shows the load cannot be sustained."""
    sla = Sla(percentile=90, latency_ms=500, max_error_rate=0.01)
    spec = StepSpec(0, 168, 4.0, 1.0, "bisect")
    result = summarize_step(spec, *synthetic(168, duration=4.0, latency=200, capacity=160),
                            sla)
    assert result.p90_ms < 500
    assert result.verdict == "fail"
    assert any("unstable" in r for r in result.reasons)


def test_noisy_but_stable_latency_is_not_flagged_unstable():
    rng = np.random.default_rng(1)
    intended = np.sort(rng.uniform(0, 6, 3000))
    latency = rng.lognormal(np.log(30), 0.5, intended.size)
    spec = StepSpec(0, 500, 6.0, 1.0, "ramp")
    ok = np.ones(intended.size, dtype=bool)
    result = summarize_step(spec, intended, intended + latency / 1000, latency, ok, SLA)
    assert not any("unstable" in r for r in result.reasons)


def test_unsent_arrivals_mark_the_generator_as_the_limit():
    from tuner.measure.analysis import generator_limit

    assert "could not send 20%" in generator_limit([60.0], [1.0], SLA, unsent_share=0.2)
    assert generator_limit([60.0], [1.0], SLA, unsent_share=0.01) is None


def test_a_lean_to_fail_below_better_evidenced_passes_does_not_cap_navigation():
    """Before: a 3 rps ramp step with 5 slow of 25 (noise) capped the navigation, so the
    search probed down to 1.5 rps for half its budget though 12 and 24 rps leaned to pass."""
    steps = [replace(fake(rate, "inconclusive", slow=slow), requests=requests, answered=requests)
             for rate, slow, requests in ((3, 5, 25), (12, 9, 154), (24, 7, 121))]
    steps.append(fake(96, "fail", slow=600))
    low, high = navigation_bracket(pool_by_rate(steps, SLA), SLA)
    assert low is not None and low.offered_rps == 24
    assert high is not None and high.offered_rps == 96


def _clustered_near_but_isolated_slow(seed=0, requests=1200, rate=16.0):
    """A p99 <= 300 ms step: latencies between half the SLA and the SLA come in runs of
    20 (a busy second), the 3 slow requests are far apart."""
    rng = np.random.default_rng(seed)
    intended = np.arange(requests) / rate
    latency = rng.uniform(20, 60, requests)
    for start in range(0, requests, 100):
        latency[start:start + 20] = rng.uniform(160, 290, 20)
    latency[[150, 550, 950]] = 400.0
    return intended, intended + latency / 1000, latency, np.ones(requests, dtype=bool)


def test_far_below_the_knee_the_slow_requests_own_clustering_counts_not_the_near_misses():
    sla = Sla(percentile=99, latency_ms=300, max_error_rate=0.01)
    spec = StepSpec(0, 16.0, 1200 / 16.0, 0.0, "bisect")
    result = summarize_step(spec, *_clustered_near_but_isolated_slow(), sla)
    assert result.autocorrelation_time > 3  # the near-misses cluster
    assert result.slow_autocorrelation_time == pytest.approx(1.0)  # the slow ones do not
    modelled = 1.4
    far = result.evidence_at(modelled, far_below_knee=True)
    near = result.evidence_at(modelled, far_below_knee=False)
    assert far.correlation == pytest.approx(modelled)
    assert near.correlation > 5 * modelled  # near the knee, the near-misses keep their say
    # Without a model (no step has failed yet) the latency series counts everywhere.
    alone = result.evidence_at(None, far_below_knee=True).correlation
    assert alone == result.evidence_at(None).correlation
    # Beside the model, less what independent requests would show by chance.
    assert near.correlation < alone
    assert near.correlation == pytest.approx(calibrated_correlation(
        beyond_independent_noise(result.autocorrelation_time, result.requests)))


def test_independent_latencies_read_as_independent_beside_the_model_in_nine_windows_of_ten():
    """The window estimate on independent requests is 1 only half the time (up to 1.18 at
    1,000 requests one time in ten); less its chance spread, it is 1 in about nine
    windows of ten, while a queue's real clustering keeps nearly all of its estimate."""
    rng = np.random.default_rng(3)
    for requests in (300, 1000):
        raw = [autocorrelation_time(rng.lognormal(0.0, 0.3, requests)) for _ in range(400)]
        assert np.mean([r > 1.0 for r in raw]) > 0.3  # what the noise rule is for
        kept = [beyond_independent_noise(r, requests) for r in raw]
        assert 0.85 <= np.mean([k == 1.0 for k in kept]) <= 0.97
    # An AR(1) series with tau = (1 + 0.8) / (1 - 0.8) = 9: the estimate loses a few %.
    series = np.zeros(1000)
    for i in range(1, series.size):
        series[i] = 0.8 * series[i - 1] + rng.normal()
    tau = autocorrelation_time(series)
    assert tau > 5
    assert beyond_independent_noise(tau, 1000) > 0.95 * tau


def test_a_record_from_before_the_slow_series_keeps_the_latency_series_correlation():
    sla = Sla(percentile=99, latency_ms=300, max_error_rate=0.01)
    spec = StepSpec(0, 16.0, 1200 / 16.0, 0.0, "bisect")
    old = replace(summarize_step(spec, *_clustered_near_but_isolated_slow(), sla),
                  slow_autocorrelation_time=math.nan)
    assert (old.evidence_at(1.4, far_below_knee=True).correlation
            == old.evidence_at(1.4).correlation)


def _shape(law, saturation_rps, sla_ms, allowed):
    from tuner.measure.analysis import QueueShape
    from tuner.measure.queueing import ServiceLaw
    from tuner.measure.slow_correlation import latency_sketch
    answers_ms = ServiceLaw.parse(law).sample_s(np.random.default_rng(5), 2000) * 1000
    return QueueShape(saturation_rps, 1.0, latency_sketch(answers_ms), sla_ms, 2000, allowed)


def test_far_below_the_knee_needs_the_saturation_and_the_sla_far_off():
    from tuner.measure.analysis import FAR_BELOW_KNEE, QueueShape
    p99 = _shape("lognormal:50:0.6", 40.0, 300.0, 0.01)  # the low-rate p99's queue
    assert p99.far_below_knee(16.0)
    assert not p99.far_below_knee(FAR_BELOW_KNEE * 40.0 + 0.1)  # too near the saturation
    # 5% of requests slow at any load against 10% allowed: the SLA's knee comes long
    # before the saturation (0.58 of it), so no rate is far below it.
    five_percent_slow = _shape("bimodal:20:0.05:400", 102.0, 100.0, 0.10)
    assert not any(five_percent_slow.far_below_knee(rate) for rate in (10.0, 30.0, 50.0))
    # No simulated queue (no step could not keep up), or no SLA share: never.
    assert not QueueShape(40.0, 1.0).far_below_knee(16.0)
    assert not QueueShape(None, 1.0).far_below_knee(1.0)
    assert not replace(p99, allowed_slow_share=0.0).far_below_knee(16.0)


@pytest.mark.parametrize("percentile,share", [(90, 0.1), (99, 0.01), (50, 0.5), (99.9, 0.001)])
def test_the_allowed_slow_share_is_exact_at_ties(percentile, share):
    """6 slow of 60 at a p90 is within the SLA, not over it (1 - 0.9 is 0.0999... in
    floating point, and a thin ramp step at exactly 10% capped a 1.5 s model's point)."""
    assert Sla(percentile, 100.0, 0.01).allowed_share == share
    assert Sla(90, 100.0, 0.01).allowed_share >= 6 / 60
