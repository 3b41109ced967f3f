"""The Prefect process around a flow run started by the CLI: quiet, drained, stopped.

The CLI runs flows in-process, and Prefect then starts a temporary API server and
background workers (logs, events). This module owns their lifecycle as the CLI needs it,
so the CLI holds no Prefect code: `quiet` before the first flow import (no network:
analytics off), `shut_down` before the last line a person sees (queued logs and events
sent, then the temporary server stopped: left to itself Prefect stops it at interpreter
exit and logs "Stopping temporary server" after our output), `stop_temporary_server` on an
interrupt (the process then leaves with `os._exit`, which skips Prefect's own clean-up)
and `serve` for `tuner schedule`. Importing this module imports no Prefect: a command that
never ran a flow never loads it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["quiet", "serve", "shut_down", "stop_temporary_server"]

SERVER_MODULE = "prefect.server.api.server"


def quiet() -> None:
    """No network here and none needed: keep Prefect from phoning home."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def shut_down(say: Callable[[str], None]) -> None:
    """Send Prefect's queued logs and events, then stop its temporary server (the order of
    Prefect's own test harness: stopped first, the workers would send to a dead server at
    exit). Nothing to do when no flow ran in this process."""
    if SERVER_MODULE not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10)
    stop_temporary_server(say)


def stop_temporary_server(say: Callable[[str], None]) -> None:
    """Stop the temporary Prefect server a flow started (Prefect stops it at interpreter
    exit, which `os._exit` skips; left running it would outlive us). `say` reports a
    server that would not stop: exiting anyway, it must not hang on it."""
    server = sys.modules.get(SERVER_MODULE)
    if server is None:
        return
    for instance in list(getattr(server.SubprocessASGIServer, "_instances", {}).values()):
        try:
            instance.stop()
        except Exception as exc:  # exiting anyway: say it, do not hang on it
            say(f"(could not stop the temporary Prefect server: {exc})")


def serve(deployment) -> None:
    """Serve a deployment until interrupted (`tuner schedule`)."""
    quiet()
    from prefect import serve as prefect_serve

    prefect_serve(deployment)
