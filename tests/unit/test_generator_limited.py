"""A failing step whose load generator was at its limit bounds nothing: the generator may
have failed it (late sends count against the latency), not the endpoint. The search goes
on below it, and the analysis rests the capacity on the steps the generator kept up with."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from tuner.config import build_config
from tuner.measure.analyse import analyse_output
from tuner.measure.analysis import Sla, StepSpec
from tuner.measure.loadtest import LoadTestOutput

SLA = Sla(percentile=90, latency_ms=100, max_error_rate=0.01)
CONFIG = build_config({}, {"endpoint": "ep", "url": "http://127.0.0.1:9", "sla_latency_ms": 100,
                           "arrivals": "uniform"})
BUSY, CALM = 97.0, 30.0


def step(index: int, rate: float, latency_ms: float) -> tuple[StepSpec, pd.DataFrame]:
    """A 20 s step (1 s warm-up) whose every answer took `latency_ms`; a negative one:
    every tenth answer 500 ms, the rest 20 ms (exactly the share a p90 allows)."""
    intended = np.arange(0, 20.0, 1.0 / rate)
    latency = np.full(intended.size, latency_ms, dtype=float)
    if latency_ms < 0:
        latency[:] = 20.0
        latency[::10] = 500.0
    frame = pd.DataFrame({"step": index, "intended_s": intended,
                          "completed_s": intended + latency / 1000, "latency_ms": latency,
                          "ok": True, "payload": 0})
    return StepSpec(index, rate, 20.0, 1.0, "ramp"), frame


def output_of(steps: list[tuple[float, float, float]]) -> LoadTestOutput:
    """Steps as (rate, latency ms, generator CPU %), in the order they ran."""
    made = [step(i, rate, latency) for i, (rate, latency, _) in enumerate(steps)]
    specs = [spec for spec, _ in made]
    meta = [{"index": i, "lanes_expected": 1, "lanes_reported": 1,
             "generator_cpu_percent": [cpu], "send_lag_p90_ms": [1.0], "unsent_share": 0.0}
            for i, (_, _, cpu) in enumerate(steps)]
    summary = {"plan": {"sla": asdict(SLA), "arrivals": "uniform"}, "step_meta": meta,
               "steps": [asdict(s) for s in specs], "stop_reason": "search complete"}
    return LoadTestOutput(Path("."), specs, pd.concat([f for _, f in made]), summary)


def test_a_fail_the_generator_kept_up_with_bounds_the_capacity_and_the_busy_one_is_not_counted():
    output = output_of([(50.0, 20.0, CALM), (200.0, 500.0, BUSY), (100.0, 500.0, CALM)])
    analysis = analyse_output(CONFIG, output, instances_under_test=1)
    assert analysis.error is None
    assert analysis.capacity.last_pass_rps == 50.0
    assert analysis.capacity.first_fail_rps == 100.0  # not 200: that fail is not counted
    busy = analysis.steps[1]
    assert busy.verdict == "fail"
    assert busy.reasons[-1] == ("not counted: load generator CPU at 97% of a core, so the "
                                "generator, not the endpoint, may have failed it")
    assert not any("not counted" in r for s in analysis.steps if s.index != 1
                   for r in s.reasons)


def test_a_capacity_bounded_only_by_a_fail_the_generator_may_have_caused_is_invalid():
    output = output_of([(50.0, 20.0, CALM), (200.0, 500.0, BUSY), (100.0, 20.0, CALM)])
    analysis = analyse_output(CONFIG, output, instances_under_test=1)
    assert analysis.capacity is None and analysis.recommendation is None
    assert analysis.error.startswith("measurement invalid: the load generator, not the "
                                     "endpoint, limited step 1 at 200 rps (load generator CPU "
                                     "at 97% of a core) and no step it kept up with failed: "
                                     "re-run with --processes ")


def test_a_busy_generator_under_a_passing_step_changes_nothing():
    output = output_of([(50.0, 20.0, BUSY), (100.0, 500.0, CALM)])
    analysis = analyse_output(CONFIG, output, instances_under_test=1)
    assert analysis.error is None and analysis.capacity.last_pass_rps == 50.0
    assert not any("not counted" in r for s in analysis.steps for r in s.reasons)


def test_an_inconclusive_step_on_a_busy_generator_still_counts():
    """Late sends only add slowness: a step that did not fail despite them is evidence."""
    output = output_of([(50.0, 20.0, CALM), (100.0, -1.0, BUSY), (200.0, 500.0, CALM)])
    analysis = analyse_output(CONFIG, output, instances_under_test=1)
    assert analysis.steps[1].verdict == "inconclusive"
    assert analysis.error is None and analysis.capacity.first_fail_rps == 200.0
    assert not any("not counted" in r for s in analysis.steps for r in s.reasons)
