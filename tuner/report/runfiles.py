"""What a run directory's files must hold before any command acts on them.

A run directory is the user's input like a flag: `apply`, `export`, `simulate`,
`validate --baseline`, `report` and the history index read files from it that may be
truncated, hand-edited or hostile. Each reader checks the fields it uses against a schema
here (types, finite numbers in sane ranges, SageMaker names, the policy being exactly the
built-in one for that endpoint and variant) and turns the first problem into one line
(InputError, exit 2) before anything is sent to AWS or written. Extra keys are allowed in
records (older and newer runs differ) but never in what would be sent to AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from tuner.config import POLICY_NAME, PREDEFINED_METRIC, TUNE_LIMITS
from tuner.errors import InputError
from tuner.inputs import (
    Limit,
    number_problem,
    read_csv_table,
    read_json_object,
    region_problem,
    sagemaker_name_problem,
    show,
)
from tuner.measure.analysis import SAMPLE_COLUMNS
from tuner.scaling.policy import DIMENSION, NAMESPACE, resource_id

MAX_RPS = 10_000_000.0
MIN_RPS = 0.001  # a measured capacity below one request in 1,000 s is not a measurement
MIN_TARGET = 0.01  # targets are written with two decimals
MAX_LATENCY_MS = 100_000_000.0
MAX_TARGET = 1_000_000_000.0
MAX_SAMPLE_SECONDS_OR_MS = 1e8  # a day of load is 86,400 s; an hour's timeout 3.6e6 ms


def _checked(problem: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    def validator(value: Any) -> Any:
        found = problem(value)
        if found is not None:
            raise ValueError(found)
        return value
    return validator


def _in(limit: Limit, hint: str = "") -> AfterValidator:
    return AfterValidator(_checked(lambda v: number_problem(v, "value", limit, hint)))


def _timestamp(aware: bool) -> Callable[[str], str]:
    def parse(value: str) -> str:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{show(value)} is not an ISO 8601 time") from None
        if aware and stamp.utcoffset() is None:
            raise ValueError(f"{show(value)} has no UTC offset")
        return value
    return parse


EndpointName = Annotated[str, AfterValidator(
    _checked(lambda v: sagemaker_name_problem(v, "endpoint")))]
VariantName = Annotated[str, AfterValidator(
    _checked(lambda v: sagemaker_name_problem(v, "variant")))]
RegionName = Annotated[str, AfterValidator(_checked(region_problem))]
# `validate --url` runs record "-": no AWS region was involved.
RunRegion = Annotated[str, AfterValidator(
    _checked(lambda v: None if v == "-" else region_problem(v, "region")))]
Time = Annotated[str, AfterValidator(_timestamp(aware=False))]
AwareTime = Annotated[str, AfterValidator(_timestamp(aware=True))]
Rate = Annotated[float, Field(ge=0, le=MAX_RPS)]
PositiveRate = Annotated[float, Field(ge=MIN_RPS, le=MAX_RPS)]
Latency = Annotated[float, Field(ge=0, le=MAX_LATENCY_MS)]
Count = Annotated[int, Field(ge=0, le=10**12)]
Capacity = Annotated[int, _in(TUNE_LIMITS["max_capacity"][0])]
Instances = Annotated[int, Field(ge=1, le=10_000)]
Cooldown = Annotated[int, _in(TUNE_LIMITS["scale_in_cooldown"][0])]
Share = Annotated[float, Field(ge=0, le=1)]


def _low_given(pair: list) -> list:
    if pair[0] is None:
        raise ValueError("the interval has no lower end")
    return pair


# JSON has no tuples: pairs are lists of exactly two.
Interval = Annotated[list[PositiveRate | None], Field(min_length=2, max_length=2),
                     AfterValidator(_low_given)]
Bracket = Annotated[list[Rate | None], Field(min_length=2, max_length=2),
                    AfterValidator(_low_given)]
Band = Annotated[list[Rate | None], Field(min_length=2, max_length=2)]
SlotsRange = Annotated[list[Annotated[int, Field(ge=1, le=1_000_000)]],
                       Field(min_length=2, max_length=2)]


class Record(BaseModel):
    """A JSON record the tool wrote: exact JSON types, finite numbers, other keys kept."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)


class Exact(Record):
    """Part of a record that is sent to AWS as it stands: no key beyond the known ones."""

    model_config = ConfigDict(extra="forbid")


class SlaRecord(Exact):
    percentile: Annotated[float, _in(*TUNE_LIMITS["sla_percentile"])]
    latency_ms: Annotated[float, _in(*TUNE_LIMITS["sla_latency_ms"])]
    max_error_rate: Annotated[float, _in(*TUNE_LIMITS["max_error_rate"])]
    confidence: Annotated[float, _in(*TUNE_LIMITS["confidence"])] = 0.95


class ScalableTargetRecord(Exact):
    ServiceNamespace: Literal["sagemaker"]
    ResourceId: str
    ScalableDimension: Literal["sagemaker:variant:DesiredInstanceCount"]
    MinCapacity: Capacity
    MaxCapacity: Capacity

    @model_validator(mode="after")
    def _ordered(self) -> ScalableTargetRecord:
        if self.MaxCapacity < self.MinCapacity:
            raise ValueError(f"MaxCapacity {self.MaxCapacity} is below MinCapacity "
                             f"{self.MinCapacity}")
        return self


class MetricRecord(Exact):
    PredefinedMetricType: Literal["SageMakerVariantInvocationsPerInstance"]


class TrackingRecord(Exact):
    TargetValue: Annotated[float, Field(ge=MIN_TARGET, le=MAX_TARGET)]
    PredefinedMetricSpecification: MetricRecord
    ScaleInCooldown: Cooldown
    ScaleOutCooldown: Cooldown
    DisableScaleIn: Literal[False] = False  # the tool never writes a policy that cannot scale in


class PolicyRecord(Exact):
    PolicyName: Literal["SageMakerEndpointInvocationScalingPolicy"]
    ServiceNamespace: Literal["sagemaker"]
    ResourceId: str
    ScalableDimension: Literal["sagemaker:variant:DesiredInstanceCount"]
    PolicyType: Literal["TargetTrackingScaling"]
    TargetTrackingScalingPolicyConfiguration: TrackingRecord


assert (NAMESPACE, DIMENSION) == ("sagemaker", "sagemaker:variant:DesiredInstanceCount")
assert (POLICY_NAME, PREDEFINED_METRIC) == ("SageMakerEndpointInvocationScalingPolicy",
                                            "SageMakerVariantInvocationsPerInstance")


def _same_resource(endpoint: str, variant: str, target: ScalableTargetRecord | None,
                   policy: PolicyRecord | None) -> None:
    wanted = resource_id(endpoint, variant)
    for name, part in (("scalable_target", target), ("policy", policy)):
        if part is not None and part.ResourceId != wanted:
            raise ValueError(f"{name} is for {show(part.ResourceId)}, not this run's "
                             f"{wanted}")


class ApplyRecord(Record):
    """What `tuner apply` and `tuner export` use: a recommendation for one variant."""

    endpoint: EndpointName
    variant: VariantName
    region: RegionName
    finished_at: AwareTime
    scalable_target: ScalableTargetRecord
    policy: PolicyRecord

    @model_validator(mode="after")
    def _one_variant(self) -> ApplyRecord:
        _same_resource(self.endpoint, self.variant, self.scalable_target, self.policy)
        return self


class SearchArrivals(Record):
    arrivals: Literal["poisson", "uniform"] = "poisson"


class MaxCapacityOnly(Record):
    MaxCapacity: Capacity | None = None


class BaselineRecord(Record):
    """What `tuner validate --baseline` uses: the SLA and the measured capacity."""

    endpoint: EndpointName
    variant: VariantName | None = None  # not used: the candidate's is --variant
    sla: SlaRecord
    instances_under_test: Instances
    capacity_ci: Interval | None = None
    max_sustainable_rps: PositiveRate | None = None
    search: SearchArrivals | None = None
    scalable_target: MaxCapacityOnly | None = None


class StepRecord(Record):
    index: Count
    phase: str
    offered_rps: Rate
    achieved_rps: Rate
    requests: Count
    errors: Count
    error_rate: Share
    p50_ms: Latency | None
    p90_ms: Latency | None
    p99_ms: Latency | None
    sla_percentile_ms: Latency | None
    verdict: Literal["pass", "fail", "inconclusive"]
    reasons: list[str]
    passed: bool


class GeneratorRecord(Record):
    generator_cpu_percent: list[Annotated[float, Field(ge=0, le=1e6)] | None] = []
    send_lag_p90_ms: list[Latency | None] = []


class SearchRecord(Record):
    strategy: str
    stop_reason: str | None
    path: list[Rate]
    bracket: Bracket | None
    arrivals: Literal["poisson", "uniform"] = "poisson"
    processes: Annotated[int, Field(ge=1, le=64)] = 1
    generator: list[GeneratorRecord] = []


class CurvePoint(Record):
    rps: Rate
    p_ms: Latency | None
    low_ms: Latency | None = None
    high_ms: Latency | None = None


class QueueModelRecord(Record):
    slots: Annotated[int, Field(ge=1, le=1_000_000)]
    slots_range: SlotsRange | None = None
    service_requests: Count | None = None
    service_mean_ms: Latency | None
    service_p50_ms: Latency | None = None
    service_p99_ms: Latency | None = None
    fit_error: Annotated[float, Field(ge=0, le=1e6)] | None = None
    poisson_capacity_rps: Rate | None
    uniform_capacity_rps: Rate | None
    poisson_capacity_band: Band
    curve: Annotated[list[CurvePoint], Field(min_length=1)]
    uniform_curve: list[CurvePoint] = []
    queueing_observed: bool | None = None
    measured_arrivals: str | None = None

    @model_validator(mode="after")
    def _rising(self) -> QueueModelRecord:
        for name in ("curve", "uniform_curve"):
            rates = [p.rps for p in getattr(self, name)]
            if rates != sorted(rates):
                raise ValueError(f"{name} rates are not in increasing order")
        return self


class DriftRecord(Record):
    change: Annotated[float, Field(ge=-1e6, le=1e6)] | None
    flagged: bool
    limit: Share
    previous_run: str | None
    previous_capacity_rps: Rate | None
    other_payloads_run: str | None = None  # the previous run sent another payload set


Count = Annotated[int, Field(ge=0, le=10**12)]
Latency = Annotated[float, Field(ge=0, le=MAX_LATENCY_MS)]


class PayloadSetRecord(Record):
    """`PayloadSet.describe()`."""

    source: str
    kind: str
    count: Annotated[int, Field(ge=1, le=10**7)]
    found: Annotated[int, Field(ge=1, le=10**9)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    content_types: dict[str, Count]
    bytes: dict[str, Annotated[float, Field(ge=0, le=1e12)] | None]
    weighted: bool


class PayloadRowRecord(Record):
    label: str
    payloads: Count
    bytes_min: Count
    bytes_max: Count
    requests: Count
    share: Share
    errors: Count
    p50_ms: Latency | None
    p90_ms: Latency | None
    p99_ms: Latency | None


class PayloadBreakdownRecord(Record):
    step: Annotated[int, Field(ge=0, le=1_000_000)]
    why: str
    grouping: Literal["payload", "size"]
    rows: list[PayloadRowRecord]


class PayloadsRecord(Record):
    """What the run sent and latency by payload (`analyse.payloads_of`)."""

    set: PayloadSetRecord
    breakdown: PayloadBreakdownRecord | None


class ValidationRecord(Record):
    passed: bool
    baseline: str
    baseline_rps_per_instance: Rate | None = None
    candidate_rps_per_instance: Rate | None = None
    change: Annotated[float, Field(ge=-1e6, le=1e6)] = 0.0
    reasons: list[str] = []


class ReportRecord(Record):
    """Everything a report is rendered from (`tuner simulate` re-renders the report)."""

    endpoint: EndpointName
    variant: VariantName
    region: RunRegion
    url: str | None
    sla: SlaRecord
    instances_under_test: Instances
    steps: list[StepRecord]
    search: SearchRecord
    max_sustainable_rps: PositiveRate | None
    capacity_ci: Interval | None
    target_basis_rps: PositiveRate | None
    capacity_method: str | None
    queue_model: QueueModelRecord | None = None
    payloads: PayloadsRecord | None = None
    max_rps_per_instance: PositiveRate | None
    safety_factor: Annotated[float, _in(*TUNE_LIMITS["safety_factor"])]
    target_invocations_per_instance: Annotated[float, Field(gt=0, le=MAX_TARGET)] | None
    scalable_target: ScalableTargetRecord | None
    policy: PolicyRecord | None
    plan_text: list[str] = []
    apply_status: str = "not attempted"
    dry_run: bool
    applied: bool
    error: str | None
    load_test_seconds: Annotated[float, Field(ge=0, le=1e7)]
    started_at: Time
    finished_at: AwareTime
    drift: DriftRecord | None = None
    validation: ValidationRecord | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ReportRecord:
        _same_resource(self.endpoint, self.variant, self.scalable_target, self.policy)
        if (self.scalable_target is None) != (self.policy is None):
            raise ValueError("scalable_target and policy come together or not at all")
        measured = (self.capacity_ci, self.max_sustainable_rps, self.target_basis_rps,
                    self.max_rps_per_instance, self.target_invocations_per_instance)
        if self.error is None and self.validation is None and None in measured:
            raise ValueError("no error, yet no measured capacity and target")
        return self


class ResultRecord(Record):
    """Any result.json this tool wrote, as `result.RunResult.from_json` reads it: the run's
    identity and SLA, and every other field's type where present (a failed run has no
    measurements, and runs from before a field existed lack it). What a command needs
    beyond that it checks with its own record (`ApplyRecord`, `BaselineRecord`, ...)."""

    schema_version: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    endpoint: EndpointName
    variant: VariantName = "AllTraffic"  # the tool's default, always written since
    region: RunRegion = "-"
    target_kind: Literal["url", "sagemaker-runtime"] | None = None
    url: str | None = None
    sla: SlaRecord
    instances_under_test: Instances = 1
    steps: list[dict] = []
    search: dict = {}
    max_sustainable_rps: Rate | None = None
    capacity_ci: Bracket | None = None
    target_basis_rps: Rate | None = None
    capacity_method: str | None = None
    queue_model: dict | None = None
    max_rps_per_instance: Rate | None = None
    safety_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    target_invocations_per_instance: Annotated[float, Field(ge=0, le=MAX_TARGET)] | None = None
    scalable_target: dict | None = None
    policy: dict | None = None
    scaling_before: dict | None = None
    scaling_after: dict | None = None
    changes: list[dict] = []
    plan: dict | None = None
    plan_text: list[str] = []
    apply_status: Literal["applied", "no-change", "dry-run", "refused", "failed",
                          "not attempted"] = "not attempted"
    dry_run: bool = False
    applied: bool = False
    error: str | None = None
    load_test_seconds: Annotated[float, Field(ge=0, le=1e7)] = 0.0
    started_at: str = ""
    finished_at: str | None = None
    run_dir: str | None = None
    aws_note: str | None = None
    interrupted: str | None = None
    validation: dict | None = None
    drift: dict | None = None


class CarriedFacts(ResultRecord):
    """What `tuner report` carries over from an old result.json, what happened at apply,
    checked as strictly as what it will be rendered into (the scaling as IaC)."""

    scalable_target: ScalableTargetRecord | None = None  # type: ignore[assignment]
    policy: PolicyRecord | None = None  # type: ignore[assignment]
    validation: ValidationRecord | None = None  # type: ignore[assignment]
    finished_at: AwareTime | None = None  # type: ignore[assignment]


class ScalingRecord(Record):
    scalable_target: dict | None
    policies: list[dict]


class RunRecord(Record):
    """run.json: what a run was asked (`config`) and found before measuring."""

    config: dict
    region: RunRegion
    instances_under_test: Instances
    scaling_before: ScalingRecord
    started_at: Time


class SpecRecord(Exact):
    index: Count
    offered_rps: PositiveRate
    duration_s: Annotated[float, Field(ge=0, le=86_400)]
    warmup_s: Annotated[float, Field(ge=0, le=3600)]
    phase: str
    abort_reason: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    invalid_reason: str | None = None  # a lane never reported the step (tuner.measure.lanes)


class StepMetaRecord(Record):
    """Locust-side statistics: NaN is how the generator writes a missing figure."""

    model_config = ConfigDict(allow_inf_nan=True)

    index: Count
    generator_cpu_percent: list[float | None] = []
    send_lag_p90_ms: list[float | None] = []
    unsent_share: float = 0.0


class PlanRecord(Record):
    sla: SlaRecord
    arrivals: Literal["poisson", "uniform"] = "poisson"


class LoadTestRecord(Record):
    """locust/loadtest.json: the steps run and the generator's own figures."""

    model_config = ConfigDict(allow_inf_nan=True)

    steps: list[SpecRecord]
    plan: PlanRecord
    stop_reason: str | None = None
    rejected: str | None = None  # the endpoint rejected the first step's requests as bad
    step_meta: list[StepMetaRecord] = []
    finished_at: Annotated[float, Field(ge=0, le=1e11)] | None = None

    @model_validator(mode="after")
    def _unique(self) -> LoadTestRecord:
        indices = [s.index for s in self.steps]
        if len(set(indices)) != len(indices):
            raise ValueError("step indices repeat")
        return self


class SimulationRow(Record):
    target: Annotated[float, Field(gt=0, le=MAX_TARGET)]
    instance_hours: Annotated[float, Field(ge=0, le=1e12)]
    cost: Annotated[float, Field(ge=0, le=1e15)] | None = None
    violation_minutes: Count
    peak_instances: Count
    scaling_actions: Count


class SimulationModel(Record):
    startup_minutes: Count
    min_capacity: Capacity
    max_capacity: Capacity


class SimulationRecord(Record):
    """simulation.json, which every later report of the run shows."""

    summary: SimulationRow
    traffic: str
    model: SimulationModel
    sweep: list[SimulationRow]
    rule_target: Annotated[float, Field(gt=0, le=MAX_TARGET)]
    recommended: SimulationRow | None = None
    max_violation_minutes: Count


def checked(model: type[Record], data: object, label: str) -> dict:
    """`data` if it satisfies `model`, else InputError naming the first bad field."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise InputError(one_line(exc, label)) from None
    return data  # type: ignore[return-value]


def one_line(exc: ValidationError, label: str) -> str:
    first = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    where = where.lstrip(".")
    message = first["msg"].removeprefix("Value error, ").replace("\n", " ")
    shown = "" if first["type"] in ("value_error", "missing") or "input" not in first else (
        f" (got {show(first['input'], 60)})")
    return f"{label}: {where + ': ' if where else ''}{message}{shown}"


def read_record(path: Path, model: type[Record], label: str | None = None,
                allow_nan: bool = False) -> dict:
    """A JSON file checked against `model`: the dict as read, or one line (InputError)."""
    name = label or str(path)
    return checked(model, read_json_object(path, name, allow_nan=allow_nan), name)


def read_samples(path: Path, step_indices: set[int],
                 payload_count: int | None = 1) -> pd.DataFrame:
    """locust/samples.csv: one row per request, every figure finite, every step and payload
    known (`payload_count` None: the run's payload set is not at hand, any index >= 0)."""
    label = str(path)
    samples = read_csv_table(path, label, " (the run's raw samples)")
    if "payload" not in samples.columns:  # written before payload sets: one body, index 0
        samples["payload"] = 0
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise InputError(f"{label} lacks columns {', '.join(missing)}: not a samples file "
                         "this tool wrote")
    samples = samples[list(SAMPLE_COLUMNS)]
    numbers = samples.apply(pd.to_numeric, errors="coerce")
    values = numbers.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        row = int(np.nonzero(~np.isfinite(values).all(axis=1))[0][0])
        raise InputError(f"{label}: row {row + 2} holds a value that is not a finite number")
    if (np.abs(values[:, 1:4]) > MAX_SAMPLE_SECONDS_OR_MS).any():
        raise InputError(f"{label}: a time or latency beyond {MAX_SAMPLE_SECONDS_OR_MS:g}: not "
                         "a sample this tool wrote")
    if (values[:, 3] < 0).any() or not np.isin(values[:, 4], (0, 1)).all():
        raise InputError(f"{label}: latencies must be >= 0 and ok must be 0 or 1")
    if not (np.equal(np.floor(values[:, 5]), values[:, 5]).all() and (values[:, 5] >= 0).all()
            and (payload_count is None or (values[:, 5] < payload_count).all())):
        raise InputError(f"{label}: a sample names a payload the run's payload set does not have")
    steps = values[:, 0]
    if not (np.equal(np.floor(steps), steps).all() and set(steps.astype(int)) <= step_indices):
        raise InputError(f"{label}: a sample names a step that loadtest.json does not have")
    numbers["step"] = numbers["step"].astype(int)
    numbers["ok"] = numbers["ok"].astype(bool)
    numbers["payload"] = numbers["payload"].astype(int)
    return numbers


RESULT_FILE = "result.json"
RUN_FILE = "run.json"  # what the run was asked before it measured (`publish.write_run_record`)


# The version of result.json this code writes (`report.result.RunResult`); a file without
# the field is version 1 (written before it existed, the same keys).
RESULT_SCHEMA_VERSION = 2


def check_schema_version(data: object, label: str) -> None:
    """Refuse a result.json from a newer endpoint-tuner in one line, before any other check
    (an older reader would misread, or wrongly refuse, what it does not know)."""
    version = data.get("schema_version", 1) if isinstance(data, dict) else 1
    if (isinstance(version, int) and not isinstance(version, bool)
            and version > RESULT_SCHEMA_VERSION):
        raise InputError(f"{label} has schema_version {version}, newer than this "
                         f"endpoint-tuner reads ({RESULT_SCHEMA_VERSION}): upgrade "
                         "endpoint-tuner to read it")


def read_result(run_dir: Path, flag: str = "") -> dict:
    """A run directory's result.json, or one line saying why it cannot be read.

    The only reader of result.json for commands that take a run directory (`apply`,
    `export`, `simulate`, `validate --baseline`, `report`); `flag` names the argument in
    the error.
    Each command then checks the fields it uses (`tuner.report.runfiles`).
    """
    label = f"{flag} {run_dir}".strip()
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        raise InputError(f"{label} is not a run directory (no {RESULT_FILE}): pass the "
                         "directory `tuner tune` printed last")
    data = read_json_object(path, str(path))
    check_schema_version(data, str(path))
    return data
