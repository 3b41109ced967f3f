"""From a finished load test to capacity and target: the analysis every entry point shares.

`tuner tune`, `tuner validate` and `tuner report` (regenerating a report from raw data) all
come through `analyse_output`, so a regenerated report shows exactly the live numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from tuner.config import TuneConfig
from tuner.errors import NoPassingStepError
from tuner.measure.analysis import (
    CapacityEstimate,
    Recommendation,
    Sla,
    StepResult,
    StepSpec,
    Verdict,
    bracket,
    derive_target,
    estimate_capacity,
    judged_specs,
    pool_by_rate,
    step_generator_limit,
    summarize_samples,
)
from tuner.measure.lanes import lost_lanes_in_meta
from tuner.measure.loadtest import LoadTestOutput, search_settings_of, sla_of
from tuner.measure.payload_stats import payload_breakdown
from tuner.measure.queue_model import fit_queue_model, step_samples_from_frame
from tuner.measure.search import budget_advice


@dataclass(frozen=True)
class Analysis:
    steps: list[StepResult]
    capacity: CapacityEstimate | None
    recommendation: Recommendation | None
    error: str | None
    queue_model: dict | None = None  # `QueueModel.to_dict()`, when the run allows a fit
    # The payload set (`PayloadSet.describe()`) and latency by payload at the capacity step.
    payloads: dict | None = None
    # Each rate's pooled verdict (`RateEvidence.to_dict()`), lowest first: what the
    # capacity rests on (a step's own verdict is what it showed alone when it ran).
    rates: tuple[dict, ...] = ()


def analyse_output(config: TuneConfig, output: LoadTestOutput, instances_under_test: int,
                   invalid_reason: str | None = None) -> Analysis:
    """Verdicts from the raw samples, then capacity and the target (from the lower end)."""
    sla = sla_of(config)
    specs = with_lost_lanes(output.specs, output.summary.get("step_meta", []))
    steps = summarize_samples(specs, output.samples, sla)
    limited = generator_limited_fails(output, steps)
    model = queue_model_of(config, output, [s for s in specs if s.index not in limited])
    # A fail the generator may have caused bounds nothing: the capacity rests on the rest.
    counted = [step for step in steps if step.index not in limited]
    steps = [replace(step, reasons=(*step.reasons, f"not counted: {limited[step.index]}, so "
                                    "the generator, not the endpoint, may have failed it"))
             if step.index in limited else step for step in steps]
    invalid_reason = (invalid_reason or lost_lane_problem(specs)
                      or refused_problem(output, steps) or output.summary.get("rejected")
                      or generator_problem(steps, counted, limited, sla))
    if invalid_reason:
        return Analysis(steps, None, None, invalid_reason, model,
                        payloads_of(output, steps, None))
    rates = tuple(rate.to_dict() for rate in pool_by_rate(counted, sla))
    try:
        capacity = estimate_capacity(counted, sla)
    except NoPassingStepError as exc:
        advice = budget_advice(counted, search_settings_of(config), output.load_seconds)
        return Analysis(steps, None, None, f"{exc}; {advice}" if advice else str(exc), model,
                        payloads_of(output, steps, None), rates)
    # The target rests on the lower end of the capacity interval: what was shown.
    recommendation = derive_target(capacity.last_pass_rps, instances_under_test,
                                   config.safety_factor)
    return Analysis(steps, capacity, recommendation, None, model,
                    payloads_of(output, steps, capacity), rates)


def payloads_of(output: LoadTestOutput, steps: list[StepResult],
                capacity: CapacityEstimate | None) -> dict | None:
    """The set the run sent, and which of its requests were slow: at the highest passing
    step (the capacity's lower end), or without one at the last step measured."""
    if output.payload_set is None:
        return None
    measured = [s for s in steps if s.requests > 0]
    passing = [s for s in measured if capacity is not None
               and s.offered_rps == capacity.last_pass_rps and s.verdict == Verdict.PASS]
    if passing:
        step, why = passing[-1], "the highest passing step"
    elif measured:
        step, why = measured[-1], "the last step measured (none passed)"
    else:
        return {"set": output.payload_set.describe(), "breakdown": None}
    return {"set": output.payload_set.describe(),
            "breakdown": payload_breakdown(output.samples, step.index, output.payload_set,
                                           f"{why}, {step.offered_rps:g} rps offered")}


def with_lost_lanes(specs: list[StepSpec], step_meta: list[dict]) -> list[StepSpec]:
    """The steps with every lost-lane step marked invalid, also in runs recorded before the
    load test marked them itself (their metadata still counts the lanes that reported)."""
    reasons = {m.get("index"): lost_lanes_in_meta(m) for m in step_meta}
    return [spec if spec.invalid_reason or not reasons.get(spec.index)
            else replace(spec, invalid_reason=reasons[spec.index]) for spec in specs]


def lost_lane_problem(specs: list[StepSpec]) -> str | None:
    """A step some lane never reported ends the measurement: it got less load than it
    offered, so it is not judged, and the search could not go on from it."""
    lost = [spec for spec in specs if spec.invalid_reason]
    if not lost:
        return None
    return (f"measurement incomplete: {lost[0].invalid_reason}; the steps before it are in "
            "the report, nothing was applied: re-run with every worker up")


def refused_problem(output: LoadTestOutput, steps: list[StepResult]) -> str | None:
    """Workers were refused (another version or body) and nothing was measured without
    them: say so, rather than that no step showed the SLA."""
    refused = output.summary.get("refused_workers") or []
    if not refused or steps:
        return None
    why = output.summary.get("stop_reason") or "refused " + "; ".join(refused)
    return f"no load was measured: {why}; nothing was applied"


def queue_model_of(config: TuneConfig, output: LoadTestOutput,
                   specs: list[StepSpec] | None = None) -> dict | None:
    """The M/G/c view of the measured curve (`tuner.measure.queue_model`), for the report and the
    simulator, from the valid steps; None when the run is too small to fit one."""
    arrivals = output.summary.get("plan", {}).get("arrivals", config.arrivals)
    valid = judged_specs(output.specs if specs is None else specs)
    model = fit_queue_model(step_samples_from_frame(valid, output.samples),
                            config.sla_percentile, config.sla_latency_ms,
                            measured_arrivals=arrivals)
    return model.to_dict() if model is not None else None


def generator_limited_fails(output: LoadTestOutput, steps: list[StepResult]) -> dict[int, str]:
    """The failing steps whose load generator was at its limit, with why: the generator
    may have failed them (late sends count against the latency), not the endpoint."""
    meta = {m["index"]: m for m in output.summary.get("step_meta", [])}
    limited = {}
    for step in steps:
        if step.verdict is not Verdict.FAIL or step.index not in meta:
            continue
        why = step_generator_limit(meta[step.index], output.sla)
        if why:
            limited[step.index] = why
    return limited


def generator_problem(steps: list[StepResult], counted: list[StepResult],
                      limited: dict[int, str], sla: Sla) -> str | None:
    """Invalid when the capacity's upper end rests on a fail the load generator may have
    caused: no other step failed above the last pass (a lower fail the generator kept up
    with bounds the capacity on its own, and the measurement stands)."""
    if not limited:
        return None
    _, first_fail = bracket(pool_by_rate(counted, sla))
    if first_fail is not None:
        return None
    step = min((s for s in steps if s.index in limited), key=lambda s: s.offered_rps)
    return (f"measurement invalid: the load generator, not the endpoint, limited step "
            f"{step.index} at {step.offered_rps:g} rps ({limited[step.index]}) "
            f"and no step it kept up with failed: re-run with --processes "
            f"{os.cpu_count() or 2} (one Locust worker per core)")
