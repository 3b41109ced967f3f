"""The run's result record: `RunResult`, built once from a run's analysis, the one form in
which result.json is written (`to_json`) and read back (`from_json`) by every command.

`tuner tune`, `tuner validate` and `tuner report` build it (`build_result`) and add what
publishing the run knows (`published`: its directory, drift, a validation verdict) as a
new record rather than editing a dict; `apply`, `export`, `simulate`, `validate
--baseline`, `report` and the history index read it back through `from_json`, after the
check of the fields each of them needs (`runfiles`). The report renders its JSON form.

Schema: result.json carries `schema_version` (`SCHEMA_VERSION`). Version 1 is every
result.json written before the field existed (up to 2026-11-30): the same keys, some
missing in older runs, which `from_json` fills with what such a run meant (no queue
model, no target kind recorded: the URL says which). A record from a newer tool is
refused in one line: an older reader would misread what it does not know. Keys this
version does not know are kept (`extra`) and written back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tuner.config import TuneConfig
from tuner.measure.analysis import CapacityEstimate, Recommendation, Sla, StepResult
from tuner.report.runfiles import (
    RESULT_SCHEMA_VERSION,
    ResultRecord,
    check_schema_version,
    checked,
)
from tuner.status import ApplyStatus, TargetKind

if TYPE_CHECKING:  # annotations only (the run directory's reader is `runfiles.read_result`)
    from tuner.scaling.apply import ApplyOutcome
    from tuner.scaling.aws import ScalingState

__all__ = ["SCHEMA_VERSION", "RunResult", "build_result", "json_safe"]

SCHEMA_VERSION = RESULT_SCHEMA_VERSION

Json = dict[str, Any]


def json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class RunResult:
    """What one run measured, recommended and did, as result.json holds it (field names
    are its keys). Built by `build_result`; read with `from_json`."""

    endpoint: str
    variant: str
    region: str
    sla: Sla
    instances_under_test: int
    target_kind: TargetKind = TargetKind.SAGEMAKER_RUNTIME
    url: str | None = None
    steps: tuple[Json, ...] = ()  # StepResult.to_dict() of each step, in order
    search: Json = field(default_factory=dict)  # strategy, stop reason, path, bracket, ...
    max_sustainable_rps: float | None = None
    capacity_ci: tuple[float | None, float | None] | None = None
    target_basis_rps: float | None = None
    capacity_method: str | None = None
    queue_model: Json | None = None  # QueueModel.to_dict()
    # {"set": PayloadSet.describe(), "breakdown": payload_stats.payload_breakdown(...)}
    payloads: Json | None = None
    max_rps_per_instance: float | None = None
    safety_factor: float = 0.5
    target_invocations_per_instance: float | None = None
    scalable_target: Json | None = None  # the RegisterScalableTarget request recommended
    policy: Json | None = None  # the PutScalingPolicy request recommended
    scaling_before: Json | None = None
    scaling_after: Json | None = None
    changes: tuple[Json, ...] = ()
    plan: Json | None = None
    plan_text: tuple[str, ...] = ()
    apply_status: ApplyStatus = ApplyStatus.NOT_ATTEMPTED
    dry_run: bool = False
    applied: bool = False
    error: str | None = None
    load_test_seconds: float = 0.0
    started_at: str = ""
    finished_at: str | None = None
    # What publishing the run adds (`published`); absent from a record not yet published.
    run_dir: str | None = None
    aws_note: str | None = None
    interrupted: str | None = None  # the signal that stopped the run
    validation: Json | None = None  # `tuner validate`'s verdict and baseline
    drift: Json | None = None  # against the previous comparable run
    extra: Json = field(default_factory=dict)  # keys this version does not know, kept

    # Frozen for its fields, not deeply (the JSON parts are dicts): not hashable either.
    __hash__ = None  # type: ignore[assignment]

    @property
    def is_validation(self) -> bool:
        return self.validation is not None

    def published(self, **facts: Any) -> RunResult:
        """This record with what publishing it found (run_dir, drift, validation, ...)."""
        unknown = set(facts) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"RunResult has no field {', '.join(sorted(unknown))}")
        return replace(self, **facts)

    def to_json(self) -> Json:
        """result.json's content: JSON types only, NaN and infinity as null."""
        data: Json = {"schema_version": SCHEMA_VERSION}
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if item.name in _WRITTEN_WHEN_SET and value is None:
                continue
            data[item.name] = asdict(value) if isinstance(value, Sla) else value
        return json_safe({**self.extra, **data})

    @classmethod
    def from_json(cls, data: object, label: str = "result.json") -> RunResult:
        """A result.json's content as a record, or one line (InputError) saying why not:
        a field of the wrong type, or a schema newer than this tool reads."""
        check_schema_version(data, label)
        record: Json = checked(ResultRecord, data, label)
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {key: value for key, value in record.items() if key in known}
        values.setdefault("variant", "AllTraffic")
        values.setdefault("region", "-")  # a run that consulted no AWS region
        values.setdefault("instances_under_test", 1)
        sla = record["sla"]
        values["sla"] = Sla(sla["percentile"], sla["latency_ms"], sla["max_error_rate"],
                            sla.get("confidence", 0.95))
        values["target_kind"] = TargetKind(record.get("target_kind") or (
            TargetKind.URL if record.get("url") else TargetKind.SAGEMAKER_RUNTIME))
        values["apply_status"] = ApplyStatus(record.get("apply_status",
                                                        ApplyStatus.NOT_ATTEMPTED))
        for key in ("steps", "changes", "plan_text"):
            values[key] = tuple(record.get(key) or ())
        if record.get("capacity_ci") is not None:
            values["capacity_ci"] = tuple(record["capacity_ci"])
        extra = {key: value for key, value in record.items()
                 if key not in known and key != "schema_version"}
        return cls(**values, extra=extra)


# Written only when the run has them (a tune run has no validation, ...).
_WRITTEN_WHEN_SET = frozenset({"aws_note", "interrupted", "validation", "payloads"})


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
    payloads: dict | None = None,
    rates: tuple[dict, ...] = (),
) -> RunResult:
    """The record of a run from its analysis and what the apply did: the one place a
    RunResult is made from a run (its JSON form stays the same as before the record)."""
    plan = apply.plan if apply else None
    return RunResult(
        endpoint=config.endpoint,
        variant=config.variant,
        region=region,
        target_kind=TargetKind.URL if config.url else TargetKind.SAGEMAKER_RUNTIME,
        url=config.url,
        sla=Sla(config.sla_percentile, config.sla_latency_ms, config.max_error_rate,
                config.confidence),
        instances_under_test=instances_under_test,
        steps=tuple(json_safe(s.to_dict()) for s in steps),
        search=json_safe({
            "strategy": config.search, "stop_reason": search_stop_reason,
            "path": [round(s.offered_rps, 3) for s in steps],
            "bracket": None if capacity is None else
            [capacity.last_pass_rps, capacity.first_fail_rps],
            "arrivals": config.arrivals, "processes": config.processes,
            "generator": generator or [], "rates": list(rates)}),
        max_sustainable_rps=_finite(None if capacity is None else capacity.max_sustainable_rps),
        capacity_ci=None if capacity is None else tuple(json_safe(list(capacity.ci))),
        target_basis_rps=None if recommendation is None
        else _finite(recommendation.max_sustainable_rps),
        capacity_method=None if capacity is None else capacity.method,
        queue_model=json_safe(queue_model),
        payloads=json_safe(payloads),
        max_rps_per_instance=None if recommendation is None
        else _finite(recommendation.max_rps_per_instance),
        safety_factor=config.safety_factor,
        target_invocations_per_instance=None if recommendation is None
        else _finite(recommendation.target_invocations_per_instance),
        scalable_target=plan.target if plan else None,
        policy=plan.policy if plan else None,
        scaling_before=before.to_dict() if before else None,
        scaling_after=apply.after.to_dict() if apply and apply.after else None,
        changes=tuple(plan.changes) if plan else (),
        plan=plan.to_dict() if plan else None,
        plan_text=tuple(plan.lines()) if plan else (),
        apply_status=ApplyStatus(apply.status) if apply else ApplyStatus.NOT_ATTEMPTED,
        dry_run=config.dry_run,
        applied=bool(apply and apply.applied),
        error=error or (apply.error if apply else None),
        load_test_seconds=load_seconds,
        started_at=started_at.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None
