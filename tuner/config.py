"""Everything a tuning run is told, validated in one place before anything is written.

`TuneConfig` is the single parameter of the Prefect flow (so the Prefect UI renders it as a
form) and is built from CLI flags and/or a TOML file with the same keys. Validation is ours,
not AWS's: moto (and sometimes AWS) accepts values that make no sense, such as min > max.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tuner.errors import InputError
from tuner.inputs import (
    MAX_HEADER_CHARS,
    Limit,
    host_problem,
    inside,
    number_problem,
    path_problem,
    payload_problem,
    region_problem,
    sagemaker_name_problem,
    show,
    url_problem,
)

POLICY_NAME = "SageMakerEndpointInvocationScalingPolicy"
PREDEFINED_METRIC = "SageMakerVariantInvocationsPerInstance"
# type/subtype with optional parameters (RFC 9110), nothing that could end the header line.
MEDIA_TYPE = re.compile(r"[\w!#$%&'*+.^`|~-]+/[\w!#$%&'*+.^`|~-]+([ \t]*;[ -~]*)?", re.ASCII)


# Sane ranges of every numeric input, finite by construction (README: "Input ranges").
# Flags and TOML keys of `tune` (also what `validate` measures the candidate with).
TUNE_LIMITS: dict[str, tuple[Limit, str]] = {
    "instances": (Limit(1, 1000, integer=True), ""),
    "sla_percentile": (Limit(0, 100, low_open=True, high_open=True), "e.g. 90 or 99"),
    "sla_latency_ms": (Limit(0, 300_000, low_open=True), "milliseconds, at most 5 minutes"),
    "max_error_rate": (Limit(0, 1, high_open=True), "e.g. 0.01 for 1%"),
    "min_capacity": (Limit(1, 10_000, integer=True), "at least 1 for a real-time endpoint"),
    "max_capacity": (Limit(1, 10_000, integer=True), ""),
    "safety_factor": (Limit(0, 1, low_open=True), "AWS starts with 0.5"),
    "scale_in_cooldown": (Limit(0, 3600, integer=True), "seconds"),
    "scale_out_cooldown": (Limit(0, 3600, integer=True), "seconds"),
    "max_change": (Limit(0, 100, low_open=True), "e.g. 0.5 for +-50%"),
    "max_test_seconds": (Limit(10, 86_400), "seconds of load, at most a day"),
    "start_rps": (Limit(0, 1_000_000, low_open=True), "requests/s"),
    "linear_step_rps": (Limit(0, 1_000_000, low_open=True), "requests/s"),
    "max_rps": (Limit(0, 1_000_000, low_open=True), "requests/s"),
    "precision": (Limit(0, 1, low_open=True, high_open=True), "e.g. 0.03"),
    "confidence": (Limit(0.5, 1, high_open=True), "e.g. 0.95"),
    "warmup_seconds": (Limit(0, 3600), "seconds"),
    "min_step_seconds": (Limit(0, 3600, low_open=True), "seconds"),
    "max_step_seconds": (Limit(0, 3600, low_open=True), "seconds"),
    "request_timeout_seconds": (Limit(0, 3600, low_open=True), "seconds"),
    "max_in_flight": (Limit(1, 10_000, integer=True), "Locust's open-file limit"),
    "abort_error_rate": (Limit(0, 1, low_open=True), ""),
    "abort_latency_factor": (Limit(1, 1000, low_open=True), "times the SLA latency"),
    "processes": (Limit(1, 64, integer=True), "one per core"),
    "expect_workers": (Limit(1, 1000, integer=True), ""),
    "master_port": (Limit(1, 65535, integer=True), "a TCP port"),
    "payload_sample": (Limit(1, 100_000, integer=True), "payloads drawn from --payloads"),
    "seed": (Limit(0, 2**32 - 1, integer=True), "any whole number"),
}
# Flags of `validate` beyond the shared ones.
VALIDATE_LIMITS: dict[str, tuple[Limit, str]] = {
    "instances": TUNE_LIMITS["instances"],
    "max_regression": (Limit(0, 1, high_open=True), "e.g. 0.1"),
    "expected_peak_rps": (Limit(0, 10_000_000, low_open=True), "requests/s"),
    "max_capacity": TUNE_LIMITS["max_capacity"],
    "max_test_seconds": TUNE_LIMITS["max_test_seconds"],
    "processes": TUNE_LIMITS["processes"],
    "payload_sample": TUNE_LIMITS["payload_sample"],
    "seed": TUNE_LIMITS["seed"],
}


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def range_checks(values: BaseModel | dict[str, Any],
                 limits: dict[str, tuple[Limit, str]]) -> list[tuple[bool, str]]:
    """Every numeric field finite and within its limit (None means "not given")."""
    get = values.get if isinstance(values, dict) else (lambda key: getattr(values, key))
    checks = []
    for key, (limit, hint) in limits.items():
        problem = number_problem(get(key), _flag(key), limit, hint)
        checks.append((problem is None, problem or ""))
    return checks


def name_checks(endpoint: str | None, variant: str | None,
                region: str | None) -> list[tuple[bool, str]]:
    """AWS's own patterns, checked before any AWS call or any path is built from a name."""
    problems = [
        None if endpoint is None else sagemaker_name_problem(endpoint, "--endpoint"),
        None if variant is None else sagemaker_name_problem(variant, "--variant"),
        None if region is None else region_problem(region, "--region"),
    ]
    return [(p is None, p or "") for p in problems]


def request_checks(url: str | None, payload: Path | None, content_type: str | None,
                   payloads: str | None = None,
                   payload_sample: int | None = None) -> list[tuple[bool, str]]:
    """What is sent, and where to: the same rules for `tune`, `validate` and `worker`. The
    payload set's own content is checked when it is loaded (`tuner.measure.payload_sources`)."""
    url_error = url_problem(url)
    payload_error = payload_problem(payload)
    payloads_error = (None if payloads is None or payloads.startswith("s3://")
                      else path_problem(payloads, "--payloads"))
    return [
        (url_error is None, url_error or ""),
        (payload_error is None, payload_error or ""),
        (payloads_error is None, payloads_error or ""),
        (payload is None or payloads is None,
         "give --payload (one body) or --payloads (a set), not both"),
        (payload_sample is None or payloads is not None,
         "--payload-sample caps a --payloads set: give --payloads too, or drop it"),
        (content_type is None or (len(content_type) <= MAX_HEADER_CHARS
                                  and MEDIA_TYPE.fullmatch(content_type) is not None),
         f"--content-type {(content_type or '')[:80]!r} is not a media type: give one like "
         "application/json or text/csv"),
    ]


def reports_checks(reports_dir: Path, endpoint: str | None) -> list[tuple[bool, str]]:
    """The run directory `<reports>/<endpoint>/` must stay inside --reports-dir."""
    problem = path_problem(reports_dir, "--reports-dir")
    if problem is not None:
        return [(False, problem)]
    if endpoint is None or sagemaker_name_problem(endpoint, "--endpoint") is not None:
        return []
    try:
        for directory in (Path(reports_dir), Path(reports_dir) / endpoint):
            if directory.exists() and not directory.is_dir():
                return [(False, f"--reports-dir: {directory} exists and is not a directory")]
        inside(reports_dir, Path(reports_dir) / endpoint, "the run directory")
    except InputError as exc:
        return [(False, str(exc))]
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable parent
        return [(False, f"--reports-dir {reports_dir} cannot be used ({exc})")]
    return []


class TuneConfig(BaseModel):
    """One tuning run: what to test, the SLA, how to search, and what to apply."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # What to test
    endpoint: str
    variant: str = "AllTraffic"
    region: str | None = None
    url: str | None = None
    instances: int | None = None
    payload: Path | None = None
    # A payload set: a directory, a .tar.gz, JSON Lines or a Data Capture export (local or
    # s3://); each request draws one (by weight), seeded by `seed`.
    payloads: str | None = None
    payload_sample: int | None = None
    seed: int = 0
    # None: application/json for one body; a payload set's files say theirs (extension,
    # record) and this, when given, is the type of those that do not.
    content_type: str | None = None

    # The SLA a step must meet
    sla_percentile: float = 90.0
    sla_latency_ms: float
    max_error_rate: float = 0.01

    # What to apply
    min_capacity: int | None = None
    max_capacity: int | None = None
    safety_factor: float = 0.5
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 300
    dry_run: bool = False
    replace_custom: bool = False
    # Leave dynamic scaling suspended if its owner suspended it (default: the apply
    # resumes it, so the new policy acts).
    keep_suspended: bool = False
    force: bool = False
    max_change: float = 0.5

    # How to search
    max_test_seconds: float = 120.0
    search: Literal["adaptive", "linear"] = "adaptive"
    start_rps: float = 10.0
    linear_step_rps: float | None = None
    max_rps: float | None = None
    precision: float = 0.03
    confidence: float = 0.95
    # Production traffic from many independent clients is Poisson-like; "uniform" (evenly
    # spaced arrivals) is optimistic: queues build far less under it.
    arrivals: Literal["uniform", "poisson"] = "poisson"
    warmup_seconds: float = 1.0
    min_step_seconds: float = 3.0
    max_step_seconds: float = 120.0
    request_timeout_seconds: float | None = None
    max_in_flight: int = 8000  # per lane; by default Little's law sizes it per step
    abort_error_rate: float = 0.2
    abort_latency_factor: float = 5.0
    processes: int = 1
    runtime_client: Literal["signed", "boto3"] = "signed"
    master: bool = False  # Locust master: workers on other machines run `tuner worker`
    expect_workers: int = 1
    master_port: int = 5557

    reports_dir: Path = Path("reports")

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint}/variant/{self.variant}"

    @property
    def effective_request_timeout_seconds(self) -> float:
        """Requests slower than this count as errors; default 10x the SLA, at least 2 s."""
        if self.request_timeout_seconds is not None:
            return self.request_timeout_seconds
        return max(2.0, 10 * self.sla_latency_ms / 1000.0)


def check_tune_config(config: TuneConfig, *, check_files: bool = True) -> TuneConfig:
    """Reject what makes no sense, with one line naming the problem and the fix.

    `check_files` False skips what must exist on this machine now (the payload file, the
    reports directory), for a config read back from a past run (`tuner report`).
    """
    checks: list[tuple[bool, str]] = [
        *name_checks(config.endpoint, config.variant, config.region),
        *range_checks(config, TUNE_LIMITS),
        (config.max_rps is None or config.max_rps >= config.start_rps,
         f"--max-rps {config.max_rps} must be at least --start-rps {config.start_rps}"),
        (config.min_step_seconds <= config.max_step_seconds,
         "--min-step-seconds must not be above --max-step-seconds"),
        (not (config.master and config.processes > 1),
         "--master runs no local workers: start `tuner worker --processes N` on each machine "
         "instead of --processes"),
        (config.instances is None or config.url is not None,
         "--instances only applies with --url; with the runtime API the count comes from "
         "DescribeEndpoint"),
        (config.min_capacity is None or config.max_capacity is None
         or config.max_capacity >= config.min_capacity,
         f"--max-capacity {config.max_capacity} is below --min-capacity {config.min_capacity}: "
         "raise max or lower min"),
    ]
    checks += request_checks(config.url, config.payload if check_files else None,
                             config.content_type, config.payloads, config.payload_sample)
    if check_files:
        checks += reports_checks(config.reports_dir, config.endpoint)
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    return config


def normalise_keys(raw: dict[str, Any], source: str) -> dict[str, Any]:
    known = set(TuneConfig.model_fields)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known:
            raise InputError(f"{source}: unknown key {key!r}; known keys are the tune flags, "
                             f"e.g. sla-latency-ms")
        out[name] = value
    return out


def load_toml_raw(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"--config {path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"--config {path}: not valid TOML (not UTF-8 text)") from None
    except OSError as exc:
        raise InputError(f"--config {path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"--config {path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise InputError(f"--config {path}: not valid TOML (nested too deeply)") from None


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config whose keys are the `tuner tune` flags (dashes or underscores)."""
    return normalise_keys(load_toml_raw(path), f"--config {path}")


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> TuneConfig:
    """Flags given on the command line override the file; then validate."""
    merged = {**file_values, **{k: v for k, v in flag_values.items() if v is not None}}
    for required in ("endpoint", "sla_latency_ms"):
        if merged.get(required) is None:
            raise InputError(f"missing {_flag(required)}: give it as a flag or in --config")
    return check_tune_config(_construct(TuneConfig, merged))


def _construct(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """Build a pydantic model, turning its first complaint into one line about a flag."""
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{_flag(field)}: {first['msg']} (got {show(first.get('input'))})"
                         ) from None


class ValidateConfig(BaseModel):
    """A pre-release capacity check of a candidate against a baseline run."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    baseline: Path
    url: str | None = None
    endpoint: str | None = None
    variant: str = "AllTraffic"
    region: str | None = None
    instances: int | None = None
    payload: Path | None = None
    payloads: str | None = None
    payload_sample: int | None = None
    seed: int = 0
    # None: application/json for one body; a payload set's files say theirs (extension,
    # record) and this, when given, is the type of those that do not.
    content_type: str | None = None
    max_regression: float = 0.1
    expected_peak_rps: float | None = None
    max_capacity: int | None = None
    max_test_seconds: float = 120.0
    processes: int = 1
    reports_dir: Path = Path("reports")


def check_validate_config(config: ValidateConfig) -> ValidateConfig:
    if (config.url is None) == (config.endpoint is None):
        raise InputError("give exactly one of --url (a candidate container) or --endpoint "
                         "(a deployed candidate endpoint)")
    baseline_problem = path_problem(config.baseline, "--baseline")
    checks = [
        (baseline_problem is None, baseline_problem or ""),
        *name_checks(config.endpoint, config.variant, config.region),
        *range_checks(config, VALIDATE_LIMITS),
        (config.instances is None or config.url is not None,
         "--instances only applies with --url"),
        *request_checks(config.url, config.payload, config.content_type, config.payloads,
                        config.payload_sample),
        *reports_checks(config.reports_dir, config.endpoint),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    return config


def check_worker(values: dict[str, Any]) -> None:
    """`tuner worker`'s flags: where the master is, what to send, and to where."""
    host = host_problem(values["master_host"], "--master-host")
    checks = [
        (host is None, host or ""),
        *name_checks(values.get("endpoint"), values.get("variant"), values.get("region")),
        *range_checks(values, {key: TUNE_LIMITS[key] for key in
                               ("master_port", "processes", "payload_sample", "seed")}),
        (values["runtime_client"] in ("signed", "boto3"),
         f"--runtime-client {show(values['runtime_client'])} is not signed or boto3"),
        *request_checks(values.get("url"), values.get("payload"), values.get("content_type"),
                        values.get("payloads"), values.get("payload_sample")),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def build_validate_config(flags: dict[str, Any]) -> ValidateConfig:
    """Flags not given (None) take the model's defaults, so an explicit --content-type can
    be told from the default one (a payload set's files otherwise say theirs)."""
    return check_validate_config(_construct(
        ValidateConfig, {k: v for k, v in flags.items() if v is not None}))
