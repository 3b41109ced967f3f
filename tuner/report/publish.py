"""A run directory from its creation to its report, outside any flow.

Creates the directory (`create_run_dir`: never reused, never outside the reports
directory), writes what the run was asked before it measures (`write_run_record`, run.json:
`tuner report` rebuilds from it), and publishes the report with the run's drift and the
reports directory's index (`publish_run`), also for a run a signal stopped
(`report_interrupted`: plain file writes, within seconds of the signal). The flows call
these directly or through their Prefect tasks (which add Prefect's logging and
artifacts), and `tuner report` through `regenerate`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tuner import interrupts
from tuner.config import TuneConfig
from tuner.errors import TunerError
from tuner.inputs import check, inside, sagemaker_name_problem
from tuner.measure.analyse import analyse_output
from tuner.measure.loadtest import read_load_test
from tuner.report.history import entries_with_run, write_index
from tuner.report.render import write_report
from tuner.report.result import RunResult, build_result
from tuner.report.runfiles import RUN_FILE
from tuner.scaling.apply import ApplyOutcome
from tuner.scaling.preflight import Preflight

__all__ = ["create_run_dir", "interrupted_state_text", "publish_run", "report_interrupted",
           "write_run_record"]


def create_run_dir(reports_dir: Path, endpoint: str, suffix: str = "") -> Path:
    """`<reports>/<endpoint>/<UTC timestamp>/`, never reusing an existing directory, and
    proven to stay inside `reports_dir` (the name is SageMaker's pattern, no link leads out)."""
    check(sagemaker_name_problem(endpoint, "--endpoint"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + suffix
    base = Path(reports_dir) / endpoint / stamp
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{stamp}-{n}")
    inside(reports_dir, candidate, "the run directory")
    candidate.mkdir(parents=True)
    return candidate


def write_run_record(run_dir: Path, config: TuneConfig, before: Preflight,
                     started: datetime) -> None:
    """What the run was asked and found before measuring, so `tuner report` can rebuild the
    report from the raw data even if the run died after the load test."""
    (Path(run_dir) / RUN_FILE).write_text(json.dumps({
        "config": config.model_dump(mode="json"), "region": before.region,
        "instances_under_test": before.instances_under_test,
        "scaling_before": before.scaling_before.to_dict(),
        "started_at": started.isoformat(timespec="seconds")}, indent=2, default=str))


def publish_run(run_dir: Path, result: RunResult,
                reports_dir: Path | None) -> tuple[RunResult, dict[str, Path]]:
    """Write a run's report with its drift against the previous comparable run, and rebuild
    the reports directory's index to include it (no drift and no index for a run outside
    a reports directory: `reports_dir` None). One read of the directory serves both. The
    record as written, and the report's files (`render.write_report`)."""
    entries, drift = ([], None) if reports_dir is None else entries_with_run(
        reports_dir, run_dir, result)
    result = result.published(drift=drift)
    paths = write_report(run_dir, result)
    if reports_dir is not None:
        write_index(reports_dir, entries)
    return result, paths


def interrupted_state_text() -> str:
    """What an interrupted run verified about the endpoint, from `interrupts` facts."""
    scaling = interrupts.fact("scaling") or "its scaling was not touched"
    applied = interrupts.fact("apply") or "nothing was applied"
    return f"{scaling}; {applied}"


def report_interrupted(run_dir: Path, config: TuneConfig, before: Preflight,
                       started: datetime, outcome: ApplyOutcome | None,
                       stop: BaseException) -> None:
    """The report of a run stopped by a signal: what was measured until then, no target,
    and what happened to the endpoint. Plain functions only (no Prefect API calls): it must
    be written within seconds of the signal."""
    signal_name = interrupts.signal_name(stop)
    error = f"interrupted by {signal_name}: {interrupted_state_text()}"
    try:
        output = read_load_test(Path(run_dir) / "locust")
        analysis = analyse_output(config, output, before.instances_under_test, error)
        steps, load_s, payloads = analysis.steps, output.load_seconds, analysis.payloads
    except (TunerError, OSError, ValueError, KeyError):
        steps, load_s, payloads = [], 0.0, None  # stopped before any step was written
    result = build_result(
        config=config, region=before.region, instances_under_test=before.instances_under_test,
        steps=steps, load_seconds=load_s, search_stop_reason=error, capacity=None,
        recommendation=None, apply=outcome, before=before.scaling_before, error=error,
        started_at=started, payloads=payloads)
    publish_run(Path(run_dir), result.published(run_dir=str(run_dir), interrupted=signal_name),
                Path(run_dir).parent.parent)
