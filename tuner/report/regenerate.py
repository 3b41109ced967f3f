"""`tuner report RUN_DIR`: rebuild a run's report from its raw data.

Everything measured is recomputed from `locust/` (samples and step plan) and `run.json`
(what the run was asked and found before measuring) with today's analysis and templates, so
a report survives template changes and a crash after measurement. What happened at apply
time is a fact, not a measurement: it is carried over from the old result.json when there
is one, as is the time the recommendation was made (which `tuner apply` ages). Every file
read is checked first (`tuner.report.runfiles`): a corrupt or hostile one is refused in one line
before anything is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from tuner.config import TuneConfig, check_tune_config
from tuner.errors import InputError
from tuner.measure.analyse import analyse_output
from tuner.measure.analysis import StepSpec
from tuner.measure.loadtest import LoadTestOutput, read_payload_set
from tuner.report.publish import publish_run
from tuner.report.render import SIMULATION_FILE
from tuner.report.result import RunResult, build_result
from tuner.report.runfiles import (
    RUN_FILE,
    CarriedFacts,
    LoadTestRecord,
    RunRecord,
    SimulationRecord,
    checked,
    one_line,
    read_record,
    read_result,
    read_samples,
)
from tuner.scaling.aws import ScalingState

APPLY_FACTS = ("scalable_target", "policy", "scaling_after", "changes", "plan", "plan_text",
               "apply_status", "applied", "dry_run", "validation", "finished_at")


def regenerate_report(run_dir: Path) -> RunResult:
    run_dir = Path(run_dir)
    run_path = run_dir / RUN_FILE
    if not run_path.is_file():
        raise InputError(f"{run_dir} has no {RUN_FILE}: pass a run directory written by "
                         "`tuner tune` or `tuner validate`")
    if not (run_dir / "locust" / "loadtest.json").is_file():
        raise InputError(f"{run_dir} has no raw load-test data (locust/loadtest.json): the run "
                         "stopped before measuring, so there is nothing to report")
    run = read_record(run_path, RunRecord)
    config = run_config(run["config"], run_path)
    output = read_raw_data(run_dir / "locust")
    old_path = run_dir / "result.json"
    old_json: dict = {}
    if old_path.is_file():  # read_result checks its schema first: a newer file is not misread
        old_json = checked(CarriedFacts, read_result(run_dir), str(old_path))
    old = RunResult.from_json(old_json, str(old_path)) if old_json else None
    for key in ("scalable_target", "policy"):
        if (old_json.get(key) or {}).get("ResourceId", config.resource_id) != config.resource_id:
            raise InputError(f"{old_path}: {key} is not for this run's {config.resource_id}")
    if (run_dir / SIMULATION_FILE).exists():  # the report shows it: check it before analysing
        read_record(run_dir / SIMULATION_FILE, SimulationRecord)
    analysis = analyse_output(config, output, run["instances_under_test"])
    scaling = run["scaling_before"]
    result = build_result(
        config=config, region=run["region"], instances_under_test=run["instances_under_test"],
        steps=analysis.steps, load_seconds=output.load_seconds,
        search_stop_reason=output.summary.get("stop_reason"),
        generator=output.summary.get("step_meta"), capacity=analysis.capacity,
        recommendation=analysis.recommendation, apply=None,
        before=ScalingState(scaling["scalable_target"], scaling["policies"]),
        error=analysis.error, started_at=datetime.fromisoformat(run["started_at"]),
        queue_model=analysis.queue_model, payloads=analysis.payloads,
        rates=analysis.rates)
    if old is not None:  # what happened at apply time is a fact: carried over
        result = result.published(**{key: getattr(old, key) for key in APPLY_FACTS
                                     if key in old_json},
                                  aws_note=old.aws_note, interrupted=old.interrupted,
                                  extra=old.extra)
        if old.apply_status.is_error and not analysis.error:
            result = result.published(error=old.error)
    else:
        result = result.published(finished_at=datetime.fromtimestamp(
            output.summary.get("finished_at", datetime.now(UTC).timestamp()), UTC
        ).isoformat(timespec="seconds"))
    # Resolved, like the reports directory it is placed in (`reports_root`).
    result, _ = publish_run(run_dir.resolve(), result.published(run_dir=str(run_dir)),
                            reports_root(run_dir, config.endpoint))
    return result


def reports_root(run_dir: Path, endpoint: str) -> Path | None:
    """The reports directory a run directory sits in (`<reports>/<endpoint>/<stamp>/`), or
    None when it sits elsewhere: the index is then left alone rather than written into
    whatever directory happens to be two levels up."""
    resolved = run_dir.resolve()
    return resolved.parent.parent if resolved.parent.name == endpoint else None


def run_config(raw: dict, source: Path) -> TuneConfig:
    """The run's config as recorded, held to today's rules (not to files existing now)."""
    try:
        config = TuneConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(one_line(exc, f"{source}: config")) from None
    try:
        return check_tune_config(config, check_files=False)
    except InputError as exc:
        raise InputError(f"{source}: config: {exc}") from None


def read_raw_data(directory: Path) -> LoadTestOutput:
    """locust/loadtest.json and samples.csv, checked, as `read_load_test` would parse them."""
    summary = read_record(directory / "loadtest.json", LoadTestRecord, allow_nan=True)
    specs = [StepSpec(**s) for s in summary["steps"]]
    payload_set = read_payload_set(directory)
    # Without payloads.jsonl (a run before payload sets, or the file removed) the samples'
    # payload indices cannot be checked against the set, and no breakdown is shown.
    samples = read_samples(directory / "samples.csv", {s.index for s in specs},
                           len(payload_set.payloads) if payload_set else None)
    return LoadTestOutput(directory, specs, samples, summary, payload_set)
