"""The messages between the Locust master, its workers and the search controller.

Typed records with one codec, as Locust's `stats.py` serializes its entries: each message
is a `TypedDict`; the sender builds it with its constructor below, and the receiver reads
it only through `unserialize(kind, data)`, which checks every field's presence and type
and raises `WireError` (one line naming the message, the field and what it held) instead
of handing on a dict read back later with `.get(..., default)`.

    master / local runner                     worker (a lane on another machine)
    ---------------------                     ----------------------------------
                          <-- tuner_hello     Hello: version, payload set hash, host, pid
    Welcome / Refused     -->                 (the handshake: `tuner.measure.lanes`)
    StepOrder             -->                 every step, to every lane
                          <-- tuner_step_done LaneReport: the step's samples and health

The handshake's `version` carries `PROTOCOL_VERSION`: a worker speaking another protocol is
refused at connect, so a record that fails `unserialize` afterwards is a fault (a bug, or a
hostile peer), and the lane that sent it is treated as lost: its step is not judged.

Pure: imported by the Locust glue and by the controller alike.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import (
    Any,
    Literal,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

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

# One entry per request; `payload` is the index of the body it sent in the run's payload set.
SAMPLE_FIELDS = ("intended_s", "completed_s", "latency_ms", "ok", "payload")


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
    # Seeds each lane's payload draws (`PayloadPicker`): every lane sends the same sequence.
    payload_seed: int


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
    # Requests the endpoint rejected as bad (HTTP 4xx other than throttling), by the name
    # of the payload sent, and one such error's text.
    rejected: dict[str, int]
    rejected_example: str | None


FieldSpec = tuple[tuple[type, ...], bool]  # accepted types, may be null


def _field_spec(hint: Any) -> FieldSpec:
    """What a field's annotation accepts on the wire: a float may arrive as an int (JSON,
    msgpack), a nested record or a literal as its JSON type; bool is never an int."""
    nullable = False
    if get_origin(hint) in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        nullable = len(members) < len(get_args(hint))
        (hint,) = members
    origin = get_origin(hint) or hint
    if origin is Literal:
        return (type(get_args(hint)[0]),), nullable
    if origin is float:
        return (int, float), nullable
    if is_typeddict(origin):
        return (dict,), nullable
    return (origin,), nullable


def _fields(record: type) -> dict[str, FieldSpec]:
    """Each field of a message record, as its annotation says: one definition of a
    message (the TypedDict), read by `unserialize`."""
    return {name: _field_spec(hint) for name, hint in get_type_hints(record).items()}


_FIELDS: dict[str, dict[str, FieldSpec]] = {
    HELLO_MESSAGE: _fields(Hello), WELCOME_MESSAGE: _fields(Welcome),
    REFUSED_MESSAGE: _fields(Refused), STEP_MESSAGE: _fields(StepOrder),
    DONE_MESSAGE: _fields(LaneReport)}
_SETTINGS = _fields(StepSettings)
MESSAGES = tuple(_FIELDS)
# The plan's lane settings that travel with every step (workers on other machines know
# only their target): the controller copies exactly these into each StepOrder.
STEP_SETTINGS = tuple(_SETTINGS)


def _check(kind: str, where: str, data: Mapping[str, Any],
           fields: Mapping[str, FieldSpec], required: bool) -> None:
    for name, (accepted, nullable) in fields.items():
        if name not in data:
            if required:
                raise WireError(f"{kind} message without {where}{name}")
            continue
        value = data[name]
        if value is None and nullable:
            continue
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise WireError(f"{kind} message's {where}{name} is {value!r:.60}, not "
                            f"{' or '.join(t.__name__ for t in accepted)}")


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
