"""`tuner report RUN_DIR`: rebuild a run's report from its raw data.

Everything measured is recomputed from `locust/` (samples and step plan) and `run.json`
(what the run was asked and found before measuring) with today's analysis and templates, so
a report survives template changes and a crash after measurement. What happened at apply
time is a fact, not a measurement: it is carried over from the old result.json when there
is one, as is the time the recommendation was made (which `tuner apply` ages).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tuner.aws import ScalingState
from tuner.config import TuneConfig
from tuner.errors import InputError
from tuner.history import entries_with_run, write_index
from tuner.loadtest import read_load_test
from tuner.measure import analyse_output
from tuner.report import write_report
from tuner.result import build_result

RUN_FILE = "run.json"
APPLY_FACTS = ("scalable_target", "policy", "scaling_after", "changes", "plan", "plan_text",
               "apply_status", "applied", "dry_run", "validation", "finished_at")


def regenerate_report(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    run_path = run_dir / RUN_FILE
    if not run_path.is_file():
        raise InputError(f"{run_dir} has no {RUN_FILE}: pass a run directory written by "
                         "`tuner tune` or `tuner validate`")
    if not (run_dir / "locust" / "loadtest.json").is_file():
        raise InputError(f"{run_dir} has no raw load-test data (locust/loadtest.json): the run "
                         "stopped before measuring, so there is nothing to report")
    run = json.loads(run_path.read_text())
    config = TuneConfig.model_validate(run["config"])
    output = read_load_test(run_dir / "locust")
    analysis = analyse_output(config, output, run["instances_under_test"])
    old_path = run_dir / "result.json"
    old = json.loads(old_path.read_text()) if old_path.is_file() else {}
    scaling = run["scaling_before"]
    result = build_result(
        config=config, region=run["region"], instances_under_test=run["instances_under_test"],
        steps=analysis.steps, load_seconds=output.load_seconds,
        search_stop_reason=output.summary.get("stop_reason"),
        generator=output.summary.get("step_meta"), capacity=analysis.capacity,
        recommendation=analysis.recommendation, apply=None,
        before=ScalingState(scaling["scalable_target"], scaling["policies"]),
        error=analysis.error, started_at=datetime.fromisoformat(run["started_at"]),
        queue_model=analysis.queue_model)
    for key in APPLY_FACTS:
        if key in old:
            result[key] = old[key]
    if not old:
        result["finished_at"] = datetime.fromtimestamp(
            output.summary.get("finished_at", datetime.now(UTC).timestamp()), UTC
        ).isoformat(timespec="seconds")
    if old.get("apply_status") in ("failed", "refused") and not analysis.error:
        result["error"] = old.get("error")
    result["run_dir"] = str(run_dir)
    reports_dir = run_dir.parent.parent
    entries, result["drift"] = entries_with_run(reports_dir, Path(run_dir), result)
    write_report(run_dir, result)
    write_index(reports_dir, entries)
    return result
