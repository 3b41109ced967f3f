"""Pre-release capacity validation: does a candidate hold the baseline's capacity?

Pure judgement over two measured per-instance capacities: a regression compares the two
best estimates; the expected peak must be served by the candidate's capacity interval's
lower end (what the test showed). A CI job can use `tuner validate` as a gate; it never
writes a scaling policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "BaselineRun",
    "ValidationVerdict",
    "baseline_rps_per_instance",
    "judge",
    "peak_max_capacity",
]


class BaselineRun(Protocol):
    """What the gate reads of the baseline run (`report.result.RunResult` has it)."""

    @property
    def max_sustainable_rps(self) -> float | None: ...
    @property
    def capacity_ci(self) -> tuple[float | None, float | None] | None: ...
    @property
    def instances_under_test(self) -> int: ...
    @property
    def scalable_target(self) -> dict[str, Any] | None: ...


def baseline_rps_per_instance(baseline: BaselineRun) -> float:
    """The baseline run's best estimate of capacity per instance (runs from before the
    estimate was recorded: its interval's lower end)."""
    point = baseline.max_sustainable_rps
    if not point:
        assert baseline.capacity_ci is not None and baseline.capacity_ci[0] is not None
        point = baseline.capacity_ci[0]
    return point / baseline.instances_under_test


def peak_max_capacity(max_capacity: int | None, baseline: BaselineRun) -> int | None:
    """The instances that must serve the expected peak: --max-capacity, else the
    baseline's scalable target's."""
    return max_capacity or (baseline.scalable_target or {}).get("MaxCapacity")


@dataclass(frozen=True)
class ValidationVerdict:
    passed: bool
    baseline_rps_per_instance: float
    candidate_rps_per_instance: float
    change: float  # (candidate - baseline) / baseline
    reasons: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "baseline_rps_per_instance":
                self.baseline_rps_per_instance,
                "candidate_rps_per_instance": self.candidate_rps_per_instance,
                "change": self.change, "reasons": list(self.reasons)}


def judge(baseline_rps_per_instance: float, candidate_rps_per_instance: float,
          max_regression: float, expected_peak_rps: float | None = None,
          max_capacity: int | None = None,
          candidate_shown_rps_per_instance: float | None = None) -> ValidationVerdict:
    """Fail on a per-instance regression beyond `max_regression`, or when max capacity
    instances of the candidate cannot serve the expected peak at the capacity it was shown
    to sustain (`candidate_shown_rps_per_instance`, default the estimate itself)."""
    change = (candidate_rps_per_instance - baseline_rps_per_instance) / baseline_rps_per_instance
    reasons = []
    if -change > max_regression:
        reasons.append(
            f"per-instance capacity regressed {-change:.1%} ({baseline_rps_per_instance:.1f} -> "
            f"{candidate_rps_per_instance:.1f} rps), more than the allowed {max_regression:.0%}")
    if expected_peak_rps is not None and max_capacity is not None:
        shown = (candidate_shown_rps_per_instance if candidate_shown_rps_per_instance
                 is not None else candidate_rps_per_instance)
        servable = max_capacity * shown
        if servable < expected_peak_rps:
            reasons.append(
                f"{max_capacity} instances x {shown:.1f} rps = "
                f"{servable:.1f} rps cannot serve the expected peak of {expected_peak_rps:g} "
                f"rps: raise --max-capacity to at least "
                f"{-(-expected_peak_rps // shown):.0f}")
    return ValidationVerdict(not reasons, baseline_rps_per_instance,
                             candidate_rps_per_instance, change, tuple(reasons))
