"""The rules that keep a distributed load test honest, as pure functions.

A step offers its full rate only if every lane (a Locust worker, or the local process) ran
its share and reported it. A lane that dies or stays silent leaves the endpoint with less
load than the step claims, so such a step is never evidence: it is marked invalid and the
run ends, naming the lane. And lanes only join a run whose code and request body they share
(`hello`/`handshake_problem`): a worker sending another body would measure another load.

Imported by the Locust glue (`loadtests.openloop`) and by the analysis; nothing heavy here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from tuner import __version__
from tuner.measure.wire import Hello

__all__ = [
    "PROTOCOL_VERSION",
    "REPORT_GRACE_S",
    "LaneCheck",
    "check_lanes",
    "handshake_problem",
    "hello",
    "lane_label",
    "lost_lanes_in_meta",
    "lost_step_reason",
    "wire_version",
]

# Bumped whenever the messages between master and workers change meaning.
PROTOCOL_VERSION = 2
# A lane that has not reported this long after its step should have ended is lost.
REPORT_GRACE_S = 15.0


def wire_version() -> str:
    """What a master and its workers must agree on: the package and the message protocol."""
    return f"{__version__}/protocol-{PROTOCOL_VERSION}"


def hello(payloads_sha256: str, host: str, pid: int) -> Hello:
    """What a worker sends the master when it connects (`tuner.measure.wire.Hello`):
    `payloads_sha256` is its payload set's `PayloadSet.sha256()`."""
    return Hello(version=wire_version(), payload_sha256=payloads_sha256, host=host, pid=pid)


def lane_label(client_id: str, greeting: Mapping[str, object] | None) -> str:
    """A lane as a user can find it: host and pid when the worker said so."""
    if client_id == "local":
        return "the local Locust process"
    if greeting and greeting.get("host") and greeting.get("pid"):
        return f"worker {greeting['host']} pid {greeting['pid']} ({client_id})"
    return f"worker {client_id}"


def handshake_problem(master: Mapping[str, object], worker: Mapping[str, object]) -> str | None:
    """Why a worker must not join this master (None: it may), in one line with the fix."""
    if worker.get("version") != master.get("version"):
        return (f"worker runs endpoint-tuner {worker.get('version')}, the master "
                f"{master.get('version')}: install the same endpoint-tuner version on both "
                "machines")
    if worker.get("payload_sha256") != master.get("payload_sha256"):
        return (f"worker payload set sha256 "
                f"{str(worker.get('payload_sha256'))[:12]} differs from the master's "
                f"{str(master.get('payload_sha256'))[:12]}: start `tuner worker` with the same "
                "--payload file or --payloads source (and --payload-sample, --seed, "
                "--content-type) as the master")
    return None


@dataclass(frozen=True)
class LaneCheck:
    """Where a step stands with its lanes: all reported, still waiting, or some lost."""

    complete: bool
    lost: tuple[str, ...] = ()  # labels of the lanes that will never report

    @property
    def waiting(self) -> bool:
        return not self.complete and not self.lost


def check_lanes(expected: Mapping[str, str], reported: Collection[str],
                alive: Collection[str], overdue: bool,
                malformed: Mapping[str, str] | None = None) -> LaneCheck:
    """A step is complete when every lane it started with reported; a lane that left (quit,
    or missed its heartbeats) before reporting is lost, and so is one still silent once the
    step is overdue, or one whose report of this step was not a report (`malformed`: lane
    id -> why; it is not evidence). `expected` maps lane ids to labels."""
    garbled = [f"{label} (its report was malformed: {malformed[lane]})"
               for lane, label in expected.items() if malformed and lane in malformed]
    if garbled:
        return LaneCheck(complete=False, lost=tuple(garbled))
    missing = [lane for lane in expected if lane not in reported]
    if not missing:
        return LaneCheck(complete=True)
    gone = [expected[lane] for lane in missing if lane not in alive]
    if gone:
        return LaneCheck(complete=False, lost=tuple(gone))
    if overdue:
        return LaneCheck(complete=False,
                         lost=tuple(f"{expected[lane]} (no report)" for lane in missing))
    return LaneCheck(complete=False)


def lost_step_reason(index: int, offered_rps: float, lost: Collection[str],
                     lanes: int) -> str:
    """Why a step is not evidence, naming the lost lanes."""
    return (f"{', '.join(lost)} lost during step {index}: the step offered {offered_rps:g} rps "
            f"over {lanes} lane(s) but not every lane reported, so the endpoint got less load "
            "than that and the step was not judged")


def lost_lanes_in_meta(meta: Mapping[str, object]) -> str | None:
    """The lost-lane reason a step's recorded metadata shows (None: every lane reported).

    Also catches runs recorded before steps were marked invalid, where only the counts of
    expected and reported lanes tell."""
    if meta.get("invalid_reason"):
        return str(meta["invalid_reason"])
    expected, reported = meta.get("lanes_expected"), meta.get("lanes_reported")
    if isinstance(expected, int) and isinstance(reported, int) and reported < expected:
        return (f"{expected - reported} of {expected} lanes did not report step "
                f"{meta.get('index')}: the step got less load than it offered and was not "
                "judged")
    return None
