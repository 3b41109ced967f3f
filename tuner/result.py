"""The run's result record: one plain dict, the single source for result.json and reports."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tuner.analysis import CapacityEstimate, Recommendation, StepResult
from tuner.config import TuneConfig
from tuner.status import ApplyStatus, TargetKind

if TYPE_CHECKING:  # annotations only (the run directory's reader is `runfiles.read_result`)
    from tuner.apply import ApplyOutcome
    from tuner.aws import ScalingState


def json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def build_result(
    *,
    config: TuneConfig,
    region: str,
    instances_under_test: int,
    steps: list[StepResult],
    load_seconds: float,
    search_stop_reason: str | None,
    generator: list[dict] | None = None,
    capacity: CapacityEstimate | None,
    recommendation: Recommendation | None,
    apply: ApplyOutcome | None,
    before: ScalingState | None,
    error: str | None,
    started_at: datetime,
    queue_model: dict | None = None,
) -> dict[str, Any]:
    plan = apply.plan if apply else None
    result = {
        "endpoint": config.endpoint,
        "variant": config.variant,
        "region": region,
        "target_kind": TargetKind.URL if config.url else TargetKind.SAGEMAKER_RUNTIME,
        "url": config.url,
        "sla": {"percentile": config.sla_percentile, "latency_ms": config.sla_latency_ms,
                "max_error_rate": config.max_error_rate, "confidence": config.confidence},
        "instances_under_test": instances_under_test,
        "steps": [s.to_dict() for s in steps],
        "search": {"strategy": config.search, "stop_reason": search_stop_reason,
                   "path": [round(s.offered_rps, 3) for s in steps],
                   "bracket": None if capacity is None else
                   [capacity.last_pass_rps, capacity.first_fail_rps],
                   "arrivals": config.arrivals,
                   "processes": config.processes,
                   "generator": generator or []},
        "max_sustainable_rps": None if capacity is None else capacity.max_sustainable_rps,
        "capacity_ci": None if capacity is None else list(capacity.ci),
        "target_basis_rps": None if recommendation is None
        else recommendation.max_sustainable_rps,
        "capacity_method": None if capacity is None else capacity.method,
        "queue_model": queue_model,
        "max_rps_per_instance": None if recommendation is None
        else recommendation.max_rps_per_instance,
        "safety_factor": config.safety_factor,
        "target_invocations_per_instance": None if recommendation is None
        else recommendation.target_invocations_per_instance,
        "scalable_target": plan.target if plan else None,
        "policy": plan.policy if plan else None,
        "scaling_before": before.to_dict() if before else None,
        "scaling_after": apply.after.to_dict() if apply and apply.after else None,
        "changes": plan.changes if plan else [],
        "plan": plan.to_dict() if plan else None,
        "plan_text": plan.lines() if plan else [],
        "apply_status": apply.status if apply else ApplyStatus.NOT_ATTEMPTED,
        "dry_run": config.dry_run,
        "applied": bool(apply and apply.applied),
        "error": error or (apply.error if apply else None),
        "load_test_seconds": load_seconds,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return json_safe(result)
