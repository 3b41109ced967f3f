"""What must be true before a run measures anything: checked locally first, fast.

Plain functions over the AWS adapters, no Prefect: the CLI calls `check_endpoint` before it
starts the temporary Prefect server (a typo in `--endpoint` is reported in about a second,
not after the server's start-up), and the flow's preflight task calls it again (scheduled
runs come straight to the flow). It also looks for suspensions a crashed run left on the
endpoint (`tuner.scaling.suspension.check_markers`) and restores them before anything else.

A container measured with `--url --dry-run` needs no AWS at all: when the endpoint cannot
be read (not deployed yet, no credentials, no region) the run measures and recommends only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tuner.config import TuneConfig, ValidateConfig
from tuner.errors import InputError
from tuner.scaling import aws
from tuner.scaling.policy import resolve_capacity, resource_id
from tuner.scaling.suspension import check_markers

__all__ = ["Preflight", "check_candidate", "check_endpoint", "inspect_variant"]


@dataclass(frozen=True)
class Preflight:
    """What was true before the test: checked once, relied on afterwards."""

    region: str
    instances_under_test: int
    endpoint_instances: int
    scaling_before: aws.ScalingState
    min_capacity: int
    max_capacity: int
    aws_note: str | None = None  # set when AWS was not consulted (--url --dry-run): why

    @property
    def aws_consulted(self) -> bool:
        return self.aws_note is None


def inspect_variant(region: str, endpoint: str, variant: str,
                    say: Callable[[str], None]) -> tuple[aws.VariantState, aws.ScalingState]:
    """The variant as it stands (InService, instance count) and its scaling configuration,
    read after restoring any suspension a crashed run left on the endpoint."""
    state = aws.describe_variant(aws.client("sagemaker", region), endpoint, variant)
    return state, settled_scaling(region, endpoint, variant, say)


def settled_scaling(region: str, endpoint: str, variant: str,
                    say: Callable[[str], None]) -> aws.ScalingState:
    """The variant's scaling configuration once stale suspensions are restored (exit 2 if a
    live run holds it)."""
    check_markers(region, endpoint, variant, say)
    return aws.read_scaling_state(aws.client("application-autoscaling", region),
                                  resource_id(endpoint, variant))


def check_endpoint(config: TuneConfig, say: Callable[[str], None]) -> Preflight:
    """Endpoint exists and is InService, no other run holds its scaling, capacity bounds
    resolved; nothing written except restoring what a crashed run left suspended."""
    try:
        region = aws.resolve_region(config.region)
        variant = aws.describe_variant(aws.client("sagemaker", region), config.endpoint,
                                       config.variant)
    except InputError as exc:
        if not (config.url and config.dry_run):
            raise
        return _without_aws(config, str(exc))
    scaling = settled_scaling(region, config.endpoint, config.variant, say)
    low, high = resolve_capacity(config.min_capacity, config.max_capacity, scaling.target)
    instances = (config.instances or 1) if config.url else variant.current_instance_count
    return Preflight(region, instances, variant.current_instance_count, scaling, low, high)


def _without_aws(config: TuneConfig, why: str) -> Preflight:
    """`--url --dry-run` before the endpoint exists: measure and recommend, compare nothing."""
    instances = config.instances or 1
    low = config.min_capacity or 1
    high = config.max_capacity or max(low, instances)
    if high < low:
        raise InputError(f"max capacity {high} is below min capacity {low}: raise "
                         "--max-capacity or lower --min-capacity")
    note = (f"AWS not consulted ({why}): measured and recommended only, compared with "
            "nothing deployed")
    return Preflight(config.region or "-", instances, instances, aws.ScalingState(None, []),
                     low, high, aws_note=note)


def check_candidate(config: ValidateConfig, warn: Callable[[str], None]) -> Preflight:
    """`tuner validate`'s preflight: a container URL needs no AWS at all (the instances it
    stands for are `--instances`); an endpoint is inspected as `tune` does, and nothing is
    ever applied to it (capacity bounds 1-1)."""
    if config.url:
        instances = config.instances or 1
        return Preflight(config.region or "-", instances, instances, aws.ScalingState(None, []),
                         1, 1)
    assert config.endpoint is not None  # the config's checks require a URL or an endpoint
    region = aws.resolve_region(config.region)
    variant, scaling = inspect_variant(region, config.endpoint, config.variant, warn)
    count = variant.current_instance_count
    return Preflight(region, count, count, scaling, 1, 1)
