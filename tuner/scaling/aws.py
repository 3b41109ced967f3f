"""AWS adapters (boto3): the SageMaker endpoint and Application Auto Scaling.

Clients come from the standard credential chain and honour $AWS_ENDPOINT_URL (that is how
tests and the demo reach moto); there is deliberately no other way to point elsewhere.
AWS errors are turned into one-line messages saying what to do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from tuner import interrupts
from tuner.errors import InputError, RunError, TunerError
from tuner.interrupts import deferred
from tuner.scaling.policy import NAMESPACE

RETRIES = Config(retries={"mode": "standard", "max_attempts": 5})


def resolve_region(region: str | None) -> str:
    name = region or boto3.session.Session().region_name
    if not name:
        raise InputError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    return name


def client(service: str, region: str) -> Any:
    return boto3.session.Session(region_name=region).client(service, config=RETRIES)


def explain(error: Exception, action: str) -> str:
    """One line on what went wrong calling AWS and how to fix it."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return (f"{action}: no AWS credentials found: set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if isinstance(error, NoRegionError):
        return f"{action}: no AWS region: pass --region or set AWS_DEFAULT_REGION"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return f"{action}: access denied: grant the IAM action {action} ({message})"
        return f"{action}: {code}: {message}"
    return f"{action}: {error}"


def call(action: str, fn, /, **kwargs):
    """Call AWS; a missing credential or region is the user's to fix (InputError), any other
    failure is the run's (RunError). Either way one line that names the IAM action."""
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        kind = InputError if isinstance(
            exc, NoCredentialsError | NoRegionError | PartialCredentialsError) else RunError
        raise kind(explain(exc, action)) from None


@dataclass(frozen=True)
class VariantState:
    endpoint_status: str
    current_instance_count: int
    variants: list[str]


def describe_variant(sagemaker: Any, endpoint: str, variant: str) -> VariantState:
    """The variant as the endpoint reports it; InputError if it cannot be tested."""
    try:
        response = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        if "Could not find" in message or exc.response["Error"].get("Code") in (
                "ValidationException", "ResourceNotFound"):
            raise InputError(f"endpoint {endpoint!r} not found in this region: check "
                             "--endpoint and --region") from None
        raise InputError(explain(exc, "sagemaker:DescribeEndpoint")) from None
    except BotoCoreError as exc:
        raise InputError(explain(exc, "sagemaker:DescribeEndpoint")) from None
    status = response.get("EndpointStatus", "Unknown")
    variants = {v["VariantName"]: v for v in response.get("ProductionVariants", [])}
    if variant not in variants:
        raise InputError(f"endpoint {endpoint!r} has no variant {variant!r} (it has "
                         f"{', '.join(sorted(variants)) or 'none'}): fix --variant")
    if status != "InService":
        raise InputError(f"endpoint {endpoint!r} is {status}, not InService: wait until it is "
                         "in service")
    count = variants[variant].get("CurrentInstanceCount")
    if not count:
        raise InputError(f"variant {variant!r} reports no running instances (serverless "
                         "variants cannot be tuned with this policy)")
    return VariantState(status, int(count), sorted(variants))


@dataclass(frozen=True)
class ScalingState:
    """The variant's scalable target (None if unregistered) and every policy on it."""

    target: dict | None
    policies: list[dict]

    def to_dict(self) -> dict:
        return {"scalable_target": self.target, "policies": self.policies}


def read_scaling_state(autoscaling: Any, resource: str) -> ScalingState:
    targets = call("application-autoscaling:DescribeScalableTargets",
                    autoscaling.describe_scalable_targets, ServiceNamespace=NAMESPACE,
                    ResourceIds=[resource])["ScalableTargets"]
    policies: list[dict] = []
    paginator = autoscaling.get_paginator("describe_scaling_policies")
    try:
        for page in paginator.paginate(ServiceNamespace=NAMESPACE, ResourceId=resource):
            policies.extend(page["ScalingPolicies"])
    except (ClientError, BotoCoreError) as exc:
        raise RunError(explain(exc, "application-autoscaling:DescribeScalingPolicies")) from None
    return ScalingState(_plain(targets[0]) if targets else None, [_plain(p) for p in policies])


def _plain(record: dict) -> dict:
    """Drop datetimes and response noise so states compare and serialise cleanly."""
    return {k: v for k, v in record.items() if k not in ("CreationTime", "Alarms")}


SUSPEND_ALL = {"DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": True}


class SuspensionLog(Protocol):
    """Where a suspension is recorded durably before it happens (`tuner.scaling.suspension`)."""

    def write(self, previous: dict[str, bool]) -> None: ...

    def clear(self) -> None: ...


def register_and_verify(autoscaling: Any, key: dict[str, str], state: dict[str, bool]) -> None:
    """Register `state` as the target's SuspendedState and read it back; RunError if AWS
    stored something else."""
    call("application-autoscaling:RegisterScalableTarget",
         autoscaling.register_scalable_target, **key, SuspendedState=state)
    targets = call("application-autoscaling:DescribeScalableTargets",
                   autoscaling.describe_scalable_targets, ServiceNamespace=key["ServiceNamespace"],
                   ResourceIds=[key["ResourceId"]])["ScalableTargets"]
    stored = (targets[0].get("SuspendedState") or {}) if targets else None
    if stored is None or any(bool(stored.get(k, False)) != v for k, v in state.items()):
        raise RunError(f"setting the SuspendedState of {key['ResourceId']}: AWS reads back "
                       f"{stored}, not {state}")


@contextlib.contextmanager
def dynamic_scaling_suspended(autoscaling: Any, target: dict | None,
                              log: SuspensionLog | None = None) -> Iterator[dict | None]:
    """Hold the variant's instance count still for a load test, then restore exactly.

    A variant that autoscales would add instances under load and spoil the per-instance
    figure. Dynamic scaling is suspended (scheduled scaling left as it was) and the previous
    SuspendedState is registered again afterwards, whatever ends the test: success, an
    exception, an abort, Ctrl-C or SIGTERM. Before suspending, `log` records the previous
    state durably (on the endpoint's tags), so that if this process dies no later run is
    left guessing; the record is cleared only once the restore has been read back. Neither
    the suspension nor the restore is cut in half by a signal (`interrupts.deferred`).
    Yields the state to restore (None: nothing registered).
    """
    if target is None or autoscaling is None:
        yield None
        return
    previous = {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                "ScheduledScalingSuspended": False, **(target.get("SuspendedState") or {})}
    key = {"ServiceNamespace": target["ServiceNamespace"], "ResourceId": target["ResourceId"],
           "ScalableDimension": target["ScalableDimension"]}
    if all(previous[k] for k in SUSPEND_ALL):
        interrupts.note("scaling", "left as found (its owner had suspended dynamic scaling)")
        yield previous  # already held still by its owner: nothing to suspend or restore
        return
    recorded = suspend_sent = False
    try:
        with deferred():  # a signal now is raised after this block, inside the try
            if log is not None:
                log.write(previous)
                recorded = True
            suspend_sent = True
            call("application-autoscaling:RegisterScalableTarget",
                 autoscaling.register_scalable_target, **key,
                 SuspendedState={**previous, **SUSPEND_ALL})
        yield previous
    finally:
        if suspend_sent:  # even if its answer was lost: AWS may have suspended
            with deferred():
                _restore_suspended_state(autoscaling, key, previous, log if recorded else None)
        elif recorded and log is not None:
            _clear_quietly(log)  # the record was written, the suspension never sent


def _restore_suspended_state(autoscaling: Any, key: dict[str, str], previous: dict[str, bool],
                             log: SuspensionLog | None) -> None:
    """Register `previous` again and read it back; drop the record only once verified (a
    record that cannot be dropped is harmless: a later run finds the state as recorded)."""
    try:
        register_and_verify(autoscaling, key, previous)
    except RunError as exc:
        interrupts.note("scaling", "MAY STILL BE SUSPENDED: the restore was not verified; run "
                        "`tuner recover`")
        raise RunError(f"{exc}; dynamic scaling may still be suspended: run `tuner recover` "
                       "(the endpoint's tags record what to restore)") from None
    interrupts.note("scaling", "dynamic scaling restored as found (read back)")
    if log is not None:
        _clear_quietly(log)


def _clear_quietly(log: SuspensionLog) -> None:
    try:
        log.clear()
    except TunerError as exc:
        logging.getLogger(__name__).warning(
            "could not remove the suspension record from the endpoint's tags (%s); the next "
            "command or `tuner recover` will find the scaling as recorded and drop it", exc)
