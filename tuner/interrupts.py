"""SIGINT and SIGTERM as one exception, raised where it is safe to stop.

A run can be stopped by Ctrl-C, by `kill`, or by a Prefect worker cancelling a scheduled
run (it sends SIGTERM). Whatever the signal, the endpoint must end up scaling as it was
found: the load test stops at once, but a write to AWS that has begun (suspending or
restoring dynamic scaling, an apply and its verification) finishes first. So:

- `handled()` turns both signals into `Interrupted` (a `KeyboardInterrupt`, which Prefect's
  engines and every `finally` already treat as a crash to clean up after), replacing
  Prefect's own SIGTERM bridge while a tuning flow runs;
- `deferred()` marks a section that must not be cut in half: a signal arriving inside it
  is remembered and raised as soon as the section ends.

The signal handlers are process-wide by nature; the one mutable record they share is
`_STATE`, touched only from the main thread.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["Interrupted", "deferred", "exit_code", "fact", "handled", "ignore_signals", "note",
           "note_run_dir", "received", "run_dir", "signal_name"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by `signum` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


@dataclass
class _State:
    depth: int = 0  # nested handled() blocks
    deferring: int = 0
    pending: int | None = None  # a signal that arrived inside a deferred section
    received: int | None = None  # the first signal this process got
    run_dir: str | None = None  # the run directory an interrupted run's report is in
    # What was verified about the endpoint so far ("scaling", "apply"): an interrupted
    # run reports these, never an assumption.
    facts: dict[str, str] = field(default_factory=dict)


_STATE = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _STATE.received is not None:
        return  # already stopping: a second Ctrl-C must not cut the clean-up short
    _STATE.received = signum
    if _STATE.deferring:
        _STATE.pending = signum
        return
    raise Interrupted(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _install() -> dict:
    return {sig: signal.signal(sig, _handler) for sig in SIGNALS}


def _restore(previous: dict) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM raise `Interrupted` (restored afterwards)."""
    if not _main_thread():
        yield
        return
    if not _STATE.depth:  # a new command: forget an earlier one's signal and run
        _STATE.received = _STATE.pending = _STATE.run_dir = None
        _STATE.facts.clear()
    previous = _install()
    _STATE.depth += 1
    try:
        yield
    finally:
        _STATE.depth -= 1
        _restore(previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Let the block finish before any SIGINT/SIGTERM that arrives meanwhile is raised."""
    if not _main_thread():
        yield
        return
    # Prefect may have put its own SIGTERM bridge back: ours governs inside the block.
    previous = _install()
    _STATE.deferring += 1
    try:
        yield
    finally:
        _STATE.deferring -= 1
        _restore(previous)
        if not _STATE.deferring and _STATE.pending is not None:
            pending, _STATE.pending = _STATE.pending, None
            raise Interrupted(pending)


def _signum(error: BaseException | None) -> int:
    if isinstance(error, Interrupted):
        return error.signum
    return int(getattr(error, "signal", None) or _STATE.received or signal.SIGINT)


def exit_code(error: BaseException | None) -> int:
    """Exit status for an interrupt (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + _signum(error)


def signal_name(error: BaseException | None) -> str:
    """Which signal stopped the run: SIGINT, SIGTERM."""
    return signal.Signals(_signum(error)).name


def received() -> int | None:
    """The first SIGINT/SIGTERM this process got while `handled()` (None: none)."""
    return _STATE.received


def note(key: str, text: str) -> None:
    """Record a verified fact about the endpoint (e.g. note("scaling", "restored as found"))."""
    _STATE.facts[key] = text


def fact(key: str) -> str | None:
    return _STATE.facts.get(key)


def ignore_signals() -> None:
    """From here on SIGINT and SIGTERM do nothing: the process is on its way out."""
    if _main_thread():
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def note_run_dir(path: object) -> None:
    """Remember where this run's report goes, for the CLI's last line after an interrupt."""
    _STATE.run_dir = str(path)


def run_dir() -> str | None:
    return _STATE.run_dir
