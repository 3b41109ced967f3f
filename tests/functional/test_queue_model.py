"""The queue model recovers known servers from synthetic runs (`VirtualEndpoint`)."""

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from tuner.measure.analysis import StepSpec
from tuner.measure.queue_model import (
    StepSamples,
    fit_queue_model,
    latency_from_dict,
    step_samples_from_frame,
)
from tuner.measure.queueing import (
    ServiceLaw,
    VirtualEndpoint,
    capacity_at_sla,
    latency_percentile_ms,
)

# Fits on synthetic runs of simulated queues: ~15 s in all, so `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

SHARES = (0.1, 0.4, 0.6, 0.75, 0.9)  # of the true saturation rate
# law, slots, SLA percentile, SLA ms
SERVERS = {
    "constant": ("constant:20", 4, 90, 40.0),
    "lognormal": ("lognormal:40:1.0", 2, 90, 200.0),
    "bimodal": ("bimodal:10:0.05:200", 8, 99, 300.0),
}


def synthetic_run(law: ServiceLaw, slots: int, seed: int = 0, arrivals: str = "poisson",
                  shares=SHARES) -> list[StepSamples]:
    """Steps as the tool runs them (1 s warm-up, backlog carried, 2 s pauses), the lowest one
    long enough for a service sample."""
    endpoint = VirtualEndpoint(law, slots, seed=seed, arrivals=arrivals)
    saturation = law.saturation_rps(slots)
    specs, frames = [], []
    for index, share in enumerate(shares):
        rate = round(share * saturation, 3)
        window = 60.0 if index == 0 else float(np.clip(600 / rate, 5, 20))
        spec = StepSpec(index, rate, window + 1.0, 1.0, "ramp")
        frame = pd.DataFrame(endpoint.run_step(rate, spec.duration_s, pause_s=2.0))
        frame["step"] = index
        specs.append(spec)
        frames.append(frame)
    return step_samples_from_frame(specs, pd.concat(frames, ignore_index=True))


@pytest.fixture(scope="module", params=sorted(SERVERS))
def fitted(request):
    text, slots, percentile, sla = SERVERS[request.param]
    law = ServiceLaw.parse(text)
    steps = synthetic_run(law, slots)
    started = time.perf_counter()
    model = fit_queue_model(steps, percentile, sla)
    seconds = time.perf_counter() - started
    truth = capacity_at_sla(law, slots, percentile, sla)
    return request.param, law, slots, percentile, sla, model, truth, seconds


def test_fit_finds_the_slots_or_the_capacity(fitted):
    name, law, slots, percentile, sla, model, truth, seconds = fitted
    assert model is not None
    capacity, (low, high) = model.capacity_rps("poisson")
    assert model.slots == slots or abs(capacity / truth - 1) <= 0.10, (
        name, model.slots, capacity, truth)
    assert low <= truth <= high, (name, low, truth, high)
    assert low <= capacity <= high
    assert seconds < 5  # about 1 s on an idle core


def test_even_arrivals_sustain_at_least_the_poisson_rate(fitted):
    name, *_, model, truth, _ = fitted
    poisson, _ = model.capacity_rps("poisson")
    uniform, _ = model.capacity_rps("uniform")
    # Both are simulated; at p99 near saturation each carries a few % of noise.
    slack = 0.97 if name == "bimodal" else 1.0
    assert uniform >= slack * poisson, (name, uniform, poisson)


def test_curve_band_contains_the_true_percentile(fitted):
    name, law, slots, percentile, sla, model, truth, _ = fitted
    rates = np.array([0.5, 0.8]) * truth
    median, low, high = model.percentile_curve(rates)
    assert np.all(low <= median) and np.all(median <= high)
    for rate, lo, hi in zip(rates, low, high, strict=True):
        real = latency_percentile_ms(rate, law, slots, percentile)
        assert 0.95 * lo <= real <= 1.05 * hi, (name, rate, lo, real, hi)


def test_to_dict_is_json_and_latency_reads_the_curve(fitted):
    name, law, slots, percentile, sla, model, truth, _ = fitted
    summary = json.loads(json.dumps(model.to_dict()))
    for key in ("slots", "service_mean_ms", "poisson_capacity_rps", "poisson_capacity_band",
                "uniform_capacity_rps", "fit_error", "curve"):
        assert summary[key] is not None, key
    assert summary["slots"] == model.slots
    assert summary["service_mean_ms"] == pytest.approx(law.average_ms, rel=0.2)
    points = summary["curve"]
    assert {"rps", "p_ms", "low_ms", "high_ms"} <= set(points[0])
    values = [p["p_ms"] for p in points]
    assert values == sorted(values)  # common random numbers: monotone in the rate
    assert all(p["low_ms"] <= p["p_ms"] <= p["high_ms"] for p in points)
    for rate in (0.0, 0.3 * truth, 0.9 * truth):
        assert model.latency_at(rate) == pytest.approx(latency_from_dict(summary, rate),
                                                       rel=1e-3)
    assert model.latency_at(0.9 * truth) > model.latency_at(0.3 * truth)
    assert math.isinf(model.latency_at(2 * model.saturation_rps))
    assert model.latency_at(summary["poisson_capacity_rps"]) == pytest.approx(sla, rel=0.25)
    started = time.perf_counter()
    for _ in range(1000):
        model.latency_at(0.5 * truth)
    assert time.perf_counter() - started < 0.5  # the simulator calls it once a minute


def test_runs_at_even_arrivals_are_replayed_as_such():
    law = ServiceLaw.parse("lognormal:40:1.0")
    steps = synthetic_run(law, 2, seed=1, arrivals="uniform")
    model = fit_queue_model(steps, 90, 200.0, seed=1, measured_arrivals="uniform")
    assert model is not None and model.slots == 2
    assert model.measured_arrivals == "uniform"


def test_too_little_data_gives_no_model():
    law = ServiceLaw.parse("constant:20")
    steps = synthetic_run(law, 4, shares=(0.1, 0.5))
    assert fit_queue_model(steps[:1], 90, 40.0) is None  # one step
    few = StepSamples(5.0, np.full(30, 20.0), np.ones(30, bool), window_s=6.0, warmup_s=1.0)
    assert fit_queue_model([few, steps[1]], 90, 40.0) is None  # 30 requests at low load
    assert fit_queue_model([], 90, 40.0) is None


def test_errors_count_as_slower_than_the_sla():
    rng = np.random.default_rng(0)
    latency = rng.uniform(10, 20, 400)
    failing = np.arange(400) % 5 == 0  # 20% errors at low load break any p90
    low = StepSamples(10.0, latency, ~failing, window_s=40.0, warmup_s=1.0)
    high = StepSamples(50.0, latency, ~failing, window_s=8.0, warmup_s=1.0)
    assert fit_queue_model([low, high], 90, 1000.0) is None
    fine = StepSamples(10.0, latency, np.ones(400, bool), window_s=40.0, warmup_s=1.0)
    broken = StepSamples(50.0, latency, ~failing, window_s=8.0, warmup_s=1.0)
    model = fit_queue_model([fine, broken], 90, 100.0)
    assert model is not None
    assert model.fit_points[1][1] == model.ceiling_ms >= 10 * 100.0


def test_step_samples_keep_the_requests_sent_in_the_window_in_send_order():
    specs = [StepSpec(0, 10.0, 3.0, 1.0, "ramp"), StepSpec(1, 20.0, 3.0, 1.0, "ramp"),
             StepSpec(2, 40.0, 3.0, 1.0, "ramp")]
    frame = pd.DataFrame({
        "step": [0, 0, 0, 0, 1, 1],
        "intended_s": [2.5, 0.5, 1.2, 3.0, 1.0, 2.99],
        "completed_s": [9.0, 0.6, 1.3, 3.1, 1.1, 3.2],
        "latency_ms": [6500.0, 100.0, 100.0, 100.0, 100.0, 210.0],
        "ok": [False, True, True, True, True, True],
    })
    steps = step_samples_from_frame(specs, frame)
    assert [s.offered_rps for s in steps] == [10.0, 20.0]  # step 2 sent nothing
    first = steps[0]
    # 0.5 s is warm-up, 3.0 s is past the end; the slow error completes late but counts.
    assert first.latency_ms.tolist() == [100.0, 6500.0]
    assert first.ok.tolist() == [True, False]
    assert (first.window_s, first.warmup_s) == (2.0, 1.0)
    assert steps[1].latency_ms.tolist() == [100.0, 210.0]


def report_result(model, law, slots, percentile, sla, steps):
    """The parts of result.json the report's queue-model view reads."""
    return {
        "sla": {"percentile": percentile, "latency_ms": sla},
        "instances_under_test": 1,
        "recommendation": {"target_invocations_per_instance":
                           round(0.5 * model.capacity_rps()[0] * 60, 2)},
        "steps": [{"offered_rps": s.offered_rps, "achieved_rps": s.offered_rps,
                   "sla_percentile_ms": float(np.percentile(s.latency_ms, percentile))}
                  for s in steps],
        "queue_model": json.loads(json.dumps(model.to_dict())),
    }


def test_report_shows_the_model_and_the_target():
    from tuner.report.render import plot_queue_model, queue_model_lines

    law = ServiceLaw.parse("constant:20")
    steps = synthetic_run(law, 4, shares=(0.1, 0.5, 0.8))
    model = fit_queue_model(steps, 90, 40.0)
    result = report_result(model, law, 4, 90, 40.0, steps)
    png = plot_queue_model(result)
    assert png is not None and png.startswith(b"\x89PNG")
    text = "\n".join(queue_model_lines(result))
    summary = result["queue_model"]
    assert "## Queue model" in text
    assert f"{summary['poisson_capacity_rps']:,.1f} rps" in text
    assert f"{summary['uniform_capacity_rps']:,.1f} rps" in text
    assert "At the target load" in text and "within the 40 ms SLA" in text
    assert "Poisson-like" in text and "optimistic" in text
    # Without a model there is nothing to show.
    bare = {k: v for k, v in result.items() if k != "queue_model"}
    assert plot_queue_model(bare) is None
    assert queue_model_lines(bare) == []
    # The target may also sit at the top level of result.json, as build_result writes it.
    flat = {**bare, "queue_model": summary, "recommendation": None,
            "target_invocations_per_instance": 13_000.0}  # 217 rps > 200
    assert "the target is beyond" in "\n".join(queue_model_lines(flat))


def test_without_queueing_the_slots_are_a_lower_bound():
    law = ServiceLaw.parse("exponential:25")
    steps = synthetic_run(law, 8, shares=(0.05, 0.1, 0.2, 0.3))
    model = fit_queue_model(steps, 95, 200.0)
    summary = model.to_dict()
    assert not model.queueing_observed and model.slots <= 8
    assert summary["poisson_capacity_band"][1] is None  # open above
    assert summary["poisson_capacity_rps"] <= capacity_at_sla(law, 8, 95, 200.0)
