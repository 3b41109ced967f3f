"""Everything a tuning run is told, validated in one place before anything is written.

`TuneConfig` is the single parameter of the Prefect flow (so the Prefect UI renders it as a
form) and is built from CLI flags and/or a TOML file with the same keys. Validation is ours,
not AWS's: moto (and sometimes AWS) accepts values that make no sense, such as min > max.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tuner.errors import InputError

POLICY_NAME = "SageMakerEndpointInvocationScalingPolicy"
PREDEFINED_METRIC = "SageMakerVariantInvocationsPerInstance"
# type/subtype with optional parameters (RFC 9110), nothing that could end the header line.
MEDIA_TYPE = re.compile(r"[\w!#$%&'*+.^`|~-]+/[\w!#$%&'*+.^`|~-]+([ \t]*;[ -~]*)?", re.ASCII)


def request_checks(url: str | None, payload: Path | None,
                    content_type: str) -> list[tuple[bool, str]]:
    """What is sent, and where to: the same rules for `tune` and `validate`."""
    return [
        (url is None or url.startswith(("http://", "https://")),
         f"--url {url!r} must start with http:// or https://"),
        (payload is None or payload.is_file(), f"--payload {payload} is not a readable file"),
        (MEDIA_TYPE.fullmatch(content_type) is not None,
         f"--content-type {content_type!r} is not a media type: give one like "
         "application/json or text/csv"),
    ]


class TuneConfig(BaseModel):
    """One tuning run: what to test, the SLA, how to search, and what to apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # What to test
    endpoint: str
    variant: str = "AllTraffic"
    region: str | None = None
    url: str | None = None
    instances: int | None = None
    payload: Path | None = None
    content_type: str = "application/json"

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


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def validate(config: TuneConfig) -> TuneConfig:
    """Reject what makes no sense, with one line naming the problem and the fix."""
    checks: list[tuple[bool, str]] = [
        (bool(config.endpoint.strip()), "--endpoint is empty: name the SageMaker endpoint"),
        (bool(config.variant.strip()), "--variant is empty: name the production variant"),
        (0 < config.sla_percentile < 100,
         f"--sla-percentile {config.sla_percentile} must be between 0 and 100 (e.g. 90 or 99)"),
        (config.sla_latency_ms > 0 and math.isfinite(config.sla_latency_ms),
         f"--sla-latency-ms {config.sla_latency_ms} must be a positive number of milliseconds"),
        (0 <= config.max_error_rate < 1,
         f"--max-error-rate {config.max_error_rate} must be in [0, 1), e.g. 0.01 for 1%"),
        (0 < config.safety_factor <= 1,
         f"--safety-factor {config.safety_factor} must be in (0, 1]; AWS starts with 0.5"),
        (0 <= config.scale_in_cooldown <= 3600,
         f"--scale-in-cooldown {config.scale_in_cooldown} must be 0-3600 seconds"),
        (0 <= config.scale_out_cooldown <= 3600,
         f"--scale-out-cooldown {config.scale_out_cooldown} must be 0-3600 seconds"),
        (config.max_change > 0, f"--max-change {config.max_change} must be positive, e.g. 0.5"),
        (config.max_test_seconds >= 10,
         f"--max-test-seconds {config.max_test_seconds} is too short: give at least 10"),
        (config.start_rps > 0, f"--start-rps {config.start_rps} must be positive"),
        (config.linear_step_rps is None or config.linear_step_rps > 0,
         f"--linear-step-rps {config.linear_step_rps} must be positive"),
        (config.max_rps is None or config.max_rps >= config.start_rps,
         f"--max-rps {config.max_rps} must be at least --start-rps {config.start_rps}"),
        (0 < config.precision < 1, f"--precision {config.precision} must be in (0, 1), e.g. 0.03"),
        (0.5 <= config.confidence < 1,
         f"--confidence {config.confidence} must be in [0.5, 1), e.g. 0.95"),
        (config.warmup_seconds >= 0, f"--warmup-seconds {config.warmup_seconds} must be >= 0"),
        (0 < config.min_step_seconds <= config.max_step_seconds,
         "--min-step-seconds must be positive and not above --max-step-seconds"),
        (config.request_timeout_seconds is None or config.request_timeout_seconds > 0,
         f"--request-timeout-seconds {config.request_timeout_seconds} must be positive"),
        (1 <= config.processes <= 64, f"--processes {config.processes} must be 1-64"),
        (1 <= config.max_in_flight <= 10000,
         f"--max-in-flight {config.max_in_flight} must be 1-10000 (Locust's open-file limit)"),
        (not (config.master and config.processes > 1),
         "--master runs no local workers: start `tuner worker --processes N` on each machine "
         "instead of --processes"),
        (1 <= config.expect_workers <= 1000,
         f"--expect-workers {config.expect_workers} must be 1-1000"),
        (1 <= config.master_port <= 65535, f"--master-port {config.master_port} is not a port"),
        (0 < config.abort_error_rate <= 1,
         f"--abort-error-rate {config.abort_error_rate} must be in (0, 1]"),
        (config.abort_latency_factor > 1,
         f"--abort-latency-factor {config.abort_latency_factor} must be above 1"),
        (config.instances is None or config.instances >= 1,
         f"--instances {config.instances} must be at least 1"),
        (config.instances is None or config.url is not None,
         "--instances only applies with --url; with the runtime API the count comes from "
         "DescribeEndpoint"),
        (config.min_capacity is None or config.min_capacity >= 1,
         f"--min-capacity {config.min_capacity} must be at least 1 for a real-time endpoint"),
        (config.max_capacity is None or config.max_capacity >= 1,
         f"--max-capacity {config.max_capacity} must be at least 1"),
        (config.min_capacity is None or config.max_capacity is None
         or config.max_capacity >= config.min_capacity,
         f"--max-capacity {config.max_capacity} is below --min-capacity {config.min_capacity}: "
         "raise max or lower min"),
    ]
    checks += request_checks(config.url, config.payload, config.content_type)
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
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"--config {path}: not valid TOML ({exc})") from None


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config whose keys are the `tuner tune` flags (dashes or underscores)."""
    return normalise_keys(load_toml_raw(path), f"--config {path}")


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> TuneConfig:
    """Flags given on the command line override the file; then validate."""
    merged = {**file_values, **{k: v for k, v in flag_values.items() if v is not None}}
    for required in ("endpoint", "sla_latency_ms"):
        if merged.get(required) is None:
            raise InputError(f"missing {_flag(required)}: give it as a flag or in --config")
    return validate(_construct(TuneConfig, merged))


def _construct(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """Build a pydantic model, turning its first complaint into one line about a flag."""
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{_flag(field)}: {first['msg']} (got {first.get('input')!r})") from None


class ValidateConfig(BaseModel):
    """A pre-release capacity check of a candidate against a baseline run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline: Path
    url: str | None = None
    endpoint: str | None = None
    variant: str = "AllTraffic"
    region: str | None = None
    instances: int | None = None
    payload: Path | None = None
    content_type: str = "application/json"
    max_regression: float = 0.1
    expected_peak_rps: float | None = None
    max_capacity: int | None = None
    max_test_seconds: float = 120.0
    processes: int = 1
    reports_dir: Path = Path("reports")


def validate_validation(config: ValidateConfig) -> ValidateConfig:
    if (config.url is None) == (config.endpoint is None):
        raise InputError("give exactly one of --url (a candidate container) or --endpoint "
                         "(a deployed candidate endpoint)")
    checks = [
        (0 <= config.max_regression < 1,
         f"--max-regression {config.max_regression} must be in [0, 1), e.g. 0.1"),
        (config.expected_peak_rps is None or config.expected_peak_rps > 0,
         f"--expected-peak-rps {config.expected_peak_rps} must be positive"),
        (config.max_capacity is None or config.max_capacity >= 1,
         f"--max-capacity {config.max_capacity} must be at least 1"),
        (config.instances is None or config.url is not None,
         "--instances only applies with --url"),
        (config.instances is None or config.instances >= 1, "--instances must be at least 1"),
        (config.max_test_seconds >= 10, "--max-test-seconds must be at least 10"),
        (1 <= config.processes <= 64, "--processes must be 1-64"),
        *request_checks(config.url, config.payload, config.content_type),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    return config


def build_validate_config(flags: dict[str, Any]) -> ValidateConfig:
    return validate_validation(_construct(ValidateConfig, flags))
