"""A live line on the terminal while the load test runs: step, rates, latency, budget left.

Only on an interactive terminal; elsewhere (CI, Prefect workers) the per-step log lines are
the progress.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.status import Status

LEFT = re.compile(r"([\d.]+) of ([\d.]+) s of load left")


@contextlib.contextmanager
def live_progress(budget_s: float) -> Iterator[Callable[[str], None]]:
    if not sys.stderr.isatty():
        yield lambda line: None
        return
    console = Console(stderr=True)
    with Status("load test starting", console=console) as status:
        state = {"left": budget_s, "last": ""}

        def show(line: str) -> None:
            found = LEFT.search(line)
            if found:
                state["left"] = float(found.group(1))
            else:
                state["last"] = line
            status.update(f"{line}  [dim]| {state['left']:.0f} s of {budget_s:.0f} s load "
                          f"left | last: {state['last'][:70]}[/dim]")

        yield show
