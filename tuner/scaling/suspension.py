"""A durable record of every dynamic-scaling suspension, kept on the endpoint itself.

While it measures, `tuner tune` suspends the variant's dynamic scaling (the instance count
must hold still). If the process dies then (SIGKILL, a crashed machine, a lost container)
nothing in it can restore scaling, and the endpoint would silently stop scaling out under
traffic: the worst outcome this tool can cause. So before suspending, the run writes a
marker where any later run on any machine sees it: a tag on the SageMaker endpoint,
`endpoint-tuner:suspended:<variant>`, holding the run, host, pid, start and expiry times
and the exact previous `SuspendedState`. The tag is removed only after the restore has been
read back and verified.

Every command that touches an endpoint first looks for a marker (`check_markers`): a stale
one (its run's process is gone from this host, or it has expired) is restored at once; a
live one (another run may still be measuring) stops the command. `tuner recover` restores
explicitly.

Tag values allow only letters, digits, spaces and `_.:/=+-@` (at most 256 characters), so
the marker is `key=value` words, e.g.
`run=20261130T011500Z host=ip-10-0-0-7 pid=4242 at=2026-11-30T01:15:00Z
until=2026-11-30T01:31:00Z in=0 out=0 scheduled=1`.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tuner.errors import InputError, RunError
from tuner.interrupts import deferred
from tuner.scaling import aws
from tuner.scaling.policy import NAMESPACE

__all__ = ["MARKER_GRACE_S", "EndpointTags", "SuspensionMarker", "SuspensionRecord",
           "check_markers", "recover", "run_suspension_record", "tag_key"]

TAG_PREFIX = "endpoint-tuner:suspended:"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# What AWS accepts in a tag value (botocore's sagemaker model: TagValue).
TAG_VALUE_PATTERN = re.compile(r"^[\w\s.:/=+\-@]{0,256}$")
STATE_KEYS = {"in": "DynamicScalingInSuspended", "out": "DynamicScalingOutSuspended",
              "scheduled": "ScheduledScalingSuspended"}


def tag_key(variant: str) -> str:
    return TAG_PREFIX + variant


def _host() -> str:
    """This machine's name, reduced to what a tag value may hold."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", socket.gethostname())[:63] or "unknown"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SuspensionMarker:
    """Who suspended a variant's dynamic scaling, until when, and what to restore."""

    run_id: str
    host: str
    pid: int
    started_at: datetime
    expires_at: datetime
    previous: dict[str, bool]  # the exact SuspendedState to register again

    @classmethod
    def for_this_process(cls, run_id: str, previous: dict[str, bool],
                         expires_at: datetime) -> SuspensionMarker:
        return cls(re.sub(r"[^A-Za-z0-9_.\-]", "-", run_id)[:64], _host(), os.getpid(),
                   datetime.now(UTC).replace(microsecond=0), expires_at.replace(microsecond=0),
                   {name: bool(previous.get(name, False)) for name in STATE_KEYS.values()})

    def tag_value(self) -> str:
        state = " ".join(f"{short}={int(self.previous[name])}"
                         for short, name in STATE_KEYS.items())
        value = (f"run={self.run_id} host={self.host} pid={self.pid} "
                 f"at={_stamp(self.started_at)} until={_stamp(self.expires_at)} {state}")
        assert TAG_VALUE_PATTERN.match(value), value
        return value

    @classmethod
    def from_tag_value(cls, value: str) -> SuspensionMarker:
        """Parse a tag value; ValueError (naming what is wrong) if it is not a marker."""
        fields = dict(word.split("=", 1) for word in value.split() if "=" in word)
        missing = {"run", "host", "pid", "at", "until", *STATE_KEYS} - set(fields)
        if missing:
            raise ValueError(f"no {', '.join(sorted(missing))} in {value!r}")
        if any(fields[short] not in ("0", "1") for short in STATE_KEYS):
            raise ValueError(f"suspended states must be 0 or 1 in {value!r}")
        return cls(fields["run"], fields["host"], int(fields["pid"]),
                   datetime.fromisoformat(fields["at"].replace("Z", "+00:00")),
                   datetime.fromisoformat(fields["until"].replace("Z", "+00:00")),
                   {name: fields[short] == "1" for short, name in STATE_KEYS.items()})

    def describe(self) -> str:
        return (f"run {self.run_id} (host {self.host}, pid {self.pid}, started "
                f"{_stamp(self.started_at)})")

    def stale(self, now: datetime, host: str | None = None,
              alive: Callable[[int], bool] | None = None) -> str | None:
        """Why nothing will restore this suspension any more (None: its run may be alive)."""
        if now >= self.expires_at:
            return f"it expired at {_stamp(self.expires_at)}"
        if self.host == (host or _host()) and not (alive or _pid_alive)(self.pid):
            return f"process {self.pid} on {self.host} is gone"
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class EndpointTags:
    """The endpoint's tags, where markers live."""

    def __init__(self, sagemaker: Any, endpoint_arn: str) -> None:
        self.sagemaker, self.arn = sagemaker, endpoint_arn

    @classmethod
    def of(cls, sagemaker: Any, endpoint: str) -> EndpointTags:
        described = aws.call("sagemaker:DescribeEndpoint", sagemaker.describe_endpoint,
                             EndpointName=endpoint)
        return cls(sagemaker, described["EndpointArn"])

    def markers(self) -> dict[str, str]:
        """Variant -> raw marker value, for every marker on the endpoint."""
        tags: list[dict] = []
        token = None
        while True:
            page = aws.call("sagemaker:ListTags", self.sagemaker.list_tags, ResourceArn=self.arn,
                            **({"NextToken": token} if token else {}))
            tags.extend(page.get("Tags", []))
            token = page.get("NextToken")
            if not token:
                break
        return {t["Key"][len(TAG_PREFIX):]: t.get("Value", "") for t in tags
                if t["Key"].startswith(TAG_PREFIX)}

    def write(self, variant: str, marker: SuspensionMarker) -> None:
        aws.call("sagemaker:AddTags", self.sagemaker.add_tags, ResourceArn=self.arn,
                 Tags=[{"Key": tag_key(variant), "Value": marker.tag_value()}])

    def clear(self, variant: str) -> None:
        aws.call("sagemaker:DeleteTags", self.sagemaker.delete_tags, ResourceArn=self.arn,
                 TagKeys=[tag_key(variant)])


def restore(autoscaling: Any, tags: EndpointTags, endpoint: str, variant: str,
            marker: SuspensionMarker) -> str:
    """Put the marker's previous SuspendedState back, verified, then drop the marker; says
    what it did. Only a variant still held the way the run held it (dynamic scale-in and
    scale-out suspended) is restored: if its state changed since (someone resumed or
    re-registered it), that newer decision stands and only the marker goes."""
    with deferred():
        key = {"ServiceNamespace": NAMESPACE,
               "ResourceId": f"endpoint/{endpoint}/variant/{variant}",
               "ScalableDimension": DIMENSION}
        targets = aws.call("application-autoscaling:DescribeScalableTargets",
                           autoscaling.describe_scalable_targets, ServiceNamespace=NAMESPACE,
                           ResourceIds=[key["ResourceId"]])["ScalableTargets"]
        current = (targets[0].get("SuspendedState") or {}) if targets else None
        if current is None:
            done = "its scalable target is gone: nothing to resume"
        elif all(current.get(k) for k in aws.SUSPEND_ALL):
            aws.register_and_verify(autoscaling, key, marker.previous)
            done = f"restored dynamic scaling {marker.previous}"
        else:
            done = (f"its scaling changed since ({current}): left as it is now")
        tags.clear(variant)
        return done


def check_markers(region: str, endpoint: str, variant: str | None,
                  say: Callable[[str], None], *, force: bool = False, write: bool = True,
                  now: datetime | None = None) -> list[str]:
    """Restore every stale suspension on the endpoint; refuse (exit 2) if a live run holds
    the suspension of `variant` (None: of any variant), unless `force`. With `write` False
    (a dry run) only say what a run would restore. Returns one line per restored variant."""
    sagemaker = aws.client("sagemaker", region)
    tags = EndpointTags.of(sagemaker, endpoint)
    found = tags.markers()
    autoscaling = aws.client("application-autoscaling", region) if found else None
    restored = []
    for name, value in sorted(found.items()):
        try:
            marker = SuspensionMarker.from_tag_value(value)
        except ValueError as exc:
            raise InputError(
                f"the suspension marker {tag_key(name)} on endpoint {endpoint!r} is unreadable "
                f"({exc}): check the variant's SuspendedState (aws application-autoscaling "
                "describe-scalable-targets), then delete the tag") from None
        why = marker.stale(now or datetime.now(UTC))
        mine = variant is None or name == variant
        if why is None and not (force and mine):
            if not mine:  # another variant's live test: not ours to judge
                say(f"note: {endpoint}/{name} is held by {marker.describe()}")
                continue
            raise InputError(
                f"{endpoint}/{name}: dynamic scaling is suspended by {marker.describe()}, "
                f"which may still be measuring (until {_stamp(marker.expires_at)}): wait for it, "
                f"or if it is dead run `tuner recover --endpoint {endpoint} --variant {name} "
                "--force`")
        assert autoscaling is not None
        if not write:
            say(f"{endpoint}/{name}: {marker.describe()} left dynamic scaling suspended "
                f"({why}); `tuner recover --endpoint {endpoint}` restores it")
            continue
        done = restore(autoscaling, tags, endpoint, name, marker)
        line = (f"{endpoint}/{name}: {marker.describe()} left dynamic scaling suspended "
                f"({why or 'forced'}); {done}")
        say(line)
        restored.append(line)
    return restored


def recover(region: str, endpoint: str, variant: str | None, force: bool,
            say: Callable[[str], None]) -> list[str]:
    """`tuner recover`: restore what crashed runs left suspended, and say what is left."""
    restored = check_markers(region, endpoint, variant, say, force=force)
    if not restored:
        say(f"{endpoint}: no suspension left by endpoint-tuner"
            + (f" on variant {variant}" if variant else ""))
    return restored


@dataclass
class SuspensionRecord:
    """What `aws.dynamic_scaling_suspended` writes before suspending and clears after the
    verified restore."""

    tags: EndpointTags
    variant: str
    marker_for: Callable[[dict[str, bool]], SuspensionMarker]

    def write(self, previous: dict[str, bool]) -> None:
        try:
            self.tags.write(self.variant, self.marker_for(previous))
        except (InputError, RunError) as exc:
            raise RunError(f"cannot record the suspension on the endpoint's tags ({exc}): "
                           "nothing was suspended; grant sagemaker:AddTags, ListTags and "
                           "DeleteTags") from None

    def clear(self) -> None:
        self.tags.clear(self.variant)


# A suspension marker outlives its run's hard time limit by this much before any later run
# may take it for stale without proof that the run's process is gone.
MARKER_GRACE_S = 300.0


def run_suspension_record(endpoint: str, variant: str, region: str, run_id: str,
                          hard_limit_s: float) -> SuspensionRecord:
    """The durable record of one run's suspension, on the endpoint's tags: expires the
    run's hard time limit plus `MARKER_GRACE_S` from now."""
    tags = EndpointTags.of(aws.client("sagemaker", region), endpoint)
    expires = datetime.now(UTC) + timedelta(seconds=hard_limit_s + MARKER_GRACE_S)
    return SuspensionRecord(tags, variant, lambda previous: (
        SuspensionMarker.for_this_process(run_id, previous, expires)))
