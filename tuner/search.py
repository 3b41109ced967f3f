"""Search decisions: which load to offer next, given what the steps so far showed.

Pure functions, like Locust's `LoadTestShape.tick()` but over results: the controller in
the Locust process calls `next_step(history, ...)` after each step and stops when it
returns None. Two strategies:

- "adaptive": exponential ramp until the first failing rate, then bisection between the
  last pass and the first fail until the bracket is narrower than `precision`;
- "linear": Inference-Recommender-style stairs of fixed increments until the first fail
  (the baseline the accuracy benchmark compares against).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuner.analysis import StepResult, StepSpec, bounds_capacity, bracket_steps
from tuner.stats import samples_for_zero_exceedances

# Requests a step aims for, as a multiple of the minimum that could support the SLA
# percentile with zero slow requests: headroom so that a step near capacity with a few
# slow requests can still pass.
SAMPLE_HEADROOM = 4
MAX_PROBES_DOWN = 4


@dataclass(frozen=True)
class SearchSettings:
    strategy: str = "adaptive"  # or "linear"
    start_rps: float = 10.0
    growth: float = 2.0
    linear_step_rps: float | None = None
    max_rps: float | None = None
    precision: float = 0.03
    percentile: float = 90.0
    confidence: float = 0.95
    warmup_s: float = 1.0
    min_step_s: float = 3.0
    max_step_s: float = 15.0
    budget_s: float = 120.0


def step_duration(rate: float, settings: SearchSettings) -> float:
    """Long enough to collect the requests the SLA percentile needs, within bounds."""
    needed = SAMPLE_HEADROOM * samples_for_zero_exceedances(settings.percentile / 100.0,
                                                            settings.confidence)
    measure = min(max(needed / rate, settings.min_step_s), settings.max_step_s)
    return settings.warmup_s + measure


def out_of_budget(settings: SearchSettings, used_s: float) -> bool:
    """Too little load budget left for even the shortest step."""
    return settings.budget_s - used_s < settings.warmup_s + settings.min_step_s


def next_step(history: list[StepResult], settings: SearchSettings,
              used_s: float) -> StepSpec | None:
    """The next step to run, or None when the search is done or out of budget."""
    rate = _next_rate(history, settings)
    if rate is None:
        return None
    if out_of_budget(settings, used_s):
        return None
    duration = min(step_duration(rate, settings), settings.budget_s - used_s)
    return StepSpec(index=len(history), offered_rps=round(rate, 3), duration_s=duration,
                    warmup_s=settings.warmup_s, phase=_phase(history, settings))


def _phase(history: list[StepResult], settings: SearchSettings) -> str:
    if settings.strategy == "linear":
        return "linear"
    if not any(bounds_capacity(s) for s in history):
        return "ramp"
    last_pass, _ = bracket_steps(history)
    return "bisect" if last_pass is not None else "probe-down"


def _next_rate(history: list[StepResult], settings: SearchSettings) -> float | None:
    cap = settings.max_rps if settings.max_rps is not None else math.inf
    if not history:
        return min(settings.start_rps, cap)
    if settings.strategy == "linear":
        last = history[-1]
        if not last.passed:
            return None
        increment = settings.linear_step_rps or settings.start_rps
        rate = last.offered_rps + increment
        return rate if rate <= cap else None

    last = history[-1]
    if not any(bounds_capacity(s) for s in history):
        # Still ramping: an inconclusive step with no slow request is a pass in waiting
        # (too few requests at a low rate), not a ceiling.
        if last.offered_rps >= cap:
            return None
        return min(last.offered_rps * settings.growth, cap)

    last_pass, first_bound = bracket_steps(history)
    if first_bound is None:
        return None
    hi = first_bound.offered_rps
    if last_pass is None:
        # Even the lowest rate tried did not pass: probe downward a few times.
        probes = sum(1 for s in history if s.phase == "probe-down")
        if probes >= MAX_PROBES_DOWN:
            return None
        return min(s.offered_rps for s in history) / settings.growth
    lo = last_pass.offered_rps
    if (hi - lo) / lo <= settings.precision:
        return None
    return (lo + hi) / 2.0
