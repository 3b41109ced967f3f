"""The Locust glue holds no state of its own until Locust's `init` event.

Importing `loadtests.openloop` must create no board, recorder or controller and add no
listener to Locust's global events: every run's collaborators are made in `events.init`,
on that environment (the recorder on `environment.events`, the controller owned by the
shape), like Locust's own `Environment` owns its runner and stats. Locust monkey-patches
the interpreter, so this runs in a fresh one (about two seconds, mostly Locust's import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import locust
from locust import events
from locust.env import Environment
from locust.event import Events

HOOKS = ("request", "init", "test_stopping", "quitting")
def counts(hooks):
    return {name: len(getattr(hooks, name)._handlers) for name in HOOKS}

before = counts(events)
import loadtests.openloop as glue
imported = counts(events)
kinds = tuple(getattr(glue, kind) for kind in
              ("StepBoard", "Recorder", "SearchController", "LaneSide") if hasattr(glue, kind))
made_at_import = sorted(name for name, value in vars(glue).items() if isinstance(value, kinds))
print(json.dumps({"made_at_import": made_at_import, "before": before, "imported": imported}),
      flush=True)

plan = glue.default_plan()
plan["output_dir"] = sys.argv[1]
glue.install(plan, glue.load_payloads(plan))
installed = counts(events)

shape = glue.SearchShape()
environment = Environment(events=Events(), shape_class=shape)
runner = environment.create_local_runner()
own_before = counts(environment.events)
events.init.fire(environment=environment, runner=runner, web_ui=None)

users = shape.tick()
board = environment.tuner_lanes.board
step = board.latest
environment.events.request.fire(
    request_type="POST", name="x", response_time=1.0, response_length=0, response=None,
    exception=None, context={"tuner": (step["index"], 0.0, 0.0, 0)})
recorded = len(environment.tuner_lanes.recorder.rows(step["index"]))
print(json.dumps({
    "installed": installed,
    "own_before": own_before, "own_after": counts(environment.events),
    "global_after_init": counts(events),
    "shape_has_controller": shape.controller is not None, "users": users,
    "posted_index": step["index"], "recorded": recorded,
}))
"""


def test_the_glue_makes_its_collaborators_in_init_on_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TUNER_PLAN", "TUNER_SUPERVISOR_PID")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "out")], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = done.stdout.strip().splitlines()
    at_import = json.loads(lines[0])
    assert at_import["made_at_import"] == []
    assert at_import["imported"] == at_import["before"]  # importing adds no listener
    assert done.returncode == 0, done.stderr
    seen = {**at_import, **json.loads(lines[-1])}
    # install() adds one listener, to `init`, and nothing else on the global hooks...
    assert seen["installed"] == {**seen["before"], "init": seen["before"]["init"] + 1}
    assert seen["global_after_init"] == seen["installed"]
    # ...and init wires the run onto its own environment.
    own = seen["own_before"]
    assert seen["own_after"] == {**own, "request": own["request"] + 1,
                                 "test_stopping": own["test_stopping"] + 1,
                                 "quitting": own["quitting"] + 1}
    assert seen["shape_has_controller"] is True
    # The shape's tick started a step and the local runner delivered it to the lanes.
    assert seen["users"] == [1, 1] and seen["posted_index"] == 0
    assert seen["recorded"] == 1
    assert (tmp_path / "out" / "samples.csv").is_file()
