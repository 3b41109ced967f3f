"""The messages between the Locust master, its workers and the search controller.

Typed records with one codec, as Locust's `stats.py` serializes its entries: each message
is a `TypedDict`; the sender builds it with its constructor below, and the receiver reads
it only through `unserialize(kind, data)`, which checks every field's presence and type
and raises `WireError` (one line naming the message, the field and what it held) instead
of handing on a dict read back later with `.get(..., default)`.

    master / local runner                     worker (a lane on another machine)
    ---------------------                     ----------------------------------
                          <-- tuner_hello     Hello: version, payload hash, host, pid
    Welcome / Refused     -->                 (the handshake: `tuner.measure.lanes`)
    StepOrder             -->                 every step, to every lane
                          <-- tuner_step_done LaneReport: the step's samples and health

The handshake's `version` carries `PROTOCOL_VERSION`: a worker speaking another protocol is
refused at connect, so a record that fails `unserialize` afterwards is a fault (a bug, or a
hostile peer), and the lane that sent it is treated as lost: its step is not judged.

Pure: imported by the Locust glue and by the controller alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

__all__ = [
    "DONE_MESSAGE",
    "HELLO_MESSAGE",
    "MESSAGES",
    "REFUSED_MESSAGE",
    "STEP_MESSAGE",
    "STEP_SETTINGS",
    "WELCOME_MESSAGE",
    "Hello",
    "LaneReport",
    "Refused",
    "StepOrder",
    "StepSettings",
    "Welcome",
    "WireError",
    "unserialize",
]

STEP_MESSAGE = "tuner_step"
DONE_MESSAGE = "tuner_step_done"
HELLO_MESSAGE = "tuner_hello"
WELCOME_MESSAGE = "tuner_welcome"
REFUSED_MESSAGE = "tuner_refused"

SAMPLE_FIELDS = ("intended_s", "completed_s", "latency_ms", "ok")


class WireError(ValueError):
    """A message that is not the record its kind promises (missing field, wrong type)."""


class Hello(TypedDict):
    """A worker's handshake: what it runs and what it sends."""

    version: str  # "<package version>/protocol-<PROTOCOL_VERSION>"
    payload_sha256: str
    host: str
    pid: int


class Welcome(TypedDict):
    """The master accepted the worker: it may run the steps posted to it."""

    version: str


class Refused(TypedDict):
    """The master refused the worker (it exits with this one line)."""

    error: str


class StepSettings(TypedDict, total=False):
    """The plan's lane settings that travel with every step (`STEP_SETTINGS`): a worker
    on another machine knows only its target."""

    request_timeout_s: float
    abort: dict[str, Any] | None
    arrivals: Literal["poisson", "uniform"]
    max_in_flight: int


class StepOrder(TypedDict):
    """A step to run: the search's `StepSpec`, over how many lanes, with which settings."""

    index: int
    offered_rps: float
    duration_s: float
    warmup_s: float
    phase: str
    abort_reason: str | None
    timeout_s: float
    invalid_reason: str | None
    lanes: int
    settings: StepSettings


class LaneReport(TypedDict):
    """What a lane sends when its step ends (`controller.lane_report`)."""

    index: int
    samples: dict[str, list]  # SAMPLE_FIELDS, one entry per request, same length
    unanswered: int
    cpu_percent: float | None
    send_lag_p90_ms: float | None
    unsent: int
    scheduled: int
    abort_reason: str | None
    aborted_at: float | None


# Field -> accepted types (None: may be null). bool is not an int here.
_INT = (int,)
_NUMBER = (int, float)
_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    HELLO_MESSAGE: {"version": ((str,), False), "payload_sha256": ((str,), False),
                    "host": ((str,), False), "pid": (_INT, False)},
    WELCOME_MESSAGE: {"version": ((str,), False)},
    REFUSED_MESSAGE: {"error": ((str,), False)},
    STEP_MESSAGE: {"index": (_INT, False), "offered_rps": (_NUMBER, False),
                   "duration_s": (_NUMBER, False), "warmup_s": (_NUMBER, False),
                   "phase": ((str,), False), "abort_reason": ((str,), True),
                   "timeout_s": (_NUMBER, False), "invalid_reason": ((str,), True),
                   "lanes": (_INT, False), "settings": ((dict,), False)},
    DONE_MESSAGE: {"index": (_INT, False), "samples": ((dict,), False),
                   "unanswered": (_INT, False), "cpu_percent": (_NUMBER, True),
                   "send_lag_p90_ms": (_NUMBER, True), "unsent": (_INT, False),
                   "scheduled": (_INT, False), "abort_reason": ((str,), True),
                   "aborted_at": (_NUMBER, True)},
}
_SETTINGS: dict[str, tuple[tuple[type, ...], bool]] = {
    "request_timeout_s": (_NUMBER, False), "abort": ((dict,), True),
    "arrivals": ((str,), False), "max_in_flight": (_INT, False)}
MESSAGES = tuple(_FIELDS)
# The plan's lane settings that travel with every step (workers on other machines know
# only their target): the controller copies exactly these into each StepOrder.
STEP_SETTINGS = tuple(_SETTINGS)


def _check(kind: str, where: str, data: Mapping[str, Any],
           fields: Mapping[str, tuple[tuple[type, ...], bool]], required: bool) -> None:
    for name, (types, nullable) in fields.items():
        if name not in data:
            if required:
                raise WireError(f"{kind} message without {where}{name}")
            continue
        value = data[name]
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise WireError(f"{kind} message's {where}{name} is {value!r:.60}, not "
                            f"{' or '.join(t.__name__ for t in types)}")


def _check_samples(samples: Mapping[str, Any]) -> None:
    lengths = set()
    for name in SAMPLE_FIELDS:
        column = samples.get(name)
        if not isinstance(column, list):
            raise WireError(f"{DONE_MESSAGE} message's samples.{name} is not a list")
        lengths.add(len(column))
    if len(lengths) > 1:
        raise WireError(f"{DONE_MESSAGE} message's sample columns differ in length "
                        f"({sorted(lengths)}): every request needs every field")


def unserialize(kind: str, data: object) -> Any:
    """`data` as the record of message `kind` (Hello, Welcome, Refused, StepOrder or
    LaneReport), checked; WireError (one line) when it is not one. Extra keys are kept
    (a newer peer of the same protocol may add some), never required."""
    fields = _FIELDS.get(kind)
    if fields is None:
        raise WireError(f"unknown message {kind!r}: this side speaks {', '.join(MESSAGES)}")
    if not isinstance(data, Mapping):
        raise WireError(f"{kind} message is {type(data).__name__}, not a record")
    _check(kind, "", data, fields, required=True)
    if kind == STEP_MESSAGE:
        _check(kind, "settings.", data["settings"], _SETTINGS, required=False)
    if kind == DONE_MESSAGE:
        _check_samples(data["samples"])
    return dict(data)
