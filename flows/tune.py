"""Prefect flow: preflight -> load test -> analyse -> apply -> report.

Orchestration only: the steps are `flows.tasks` (Prefect tasks over the library) and
`tuner.report.publish` (the run directory and its report). Runs with no Prefect server
configured (a temporary local one is started), on a schedule, or from the `tuner` CLI.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow

from flows.tasks import (
    analyse,
    apply_recommendation,
    instance_change,
    load_test,
    preflight,
    publish_report,
    record_run,
)
from tuner import interrupts
from tuner.config import TuneConfig, check_tune_config
from tuner.errors import InputError, RunError
from tuner.measure.loadtest import config_payload_set, write_payload_set
from tuner.report.publish import create_run_dir, report_interrupted
from tuner.report.result import RunResult, build_result


@flow(name="tune-endpoint")
def tune_endpoint(config: TuneConfig) -> RunResult:
    """Measure the endpoint's capacity, derive the target, apply it, and report.

    Returns the result record with `run_dir`; raises InputError before anything is written
    when the inputs are wrong, and RunError (after writing the report) when the run fails.
    SIGINT or SIGTERM (a Prefect worker cancelling the run) stop the load test, restore the
    endpoint's scaling, write a report marked interrupted and re-raise `Interrupted`.
    """
    with interrupts.handled():
        started = datetime.now(UTC)
        check_tune_config(config)  # again: a deployment's parameters come from the UI, not the CLI
        # Read once, before anything is touched: a bad set is refused with nothing written.
        payload_set = config_payload_set(config)
        before = preflight(config)
        run_dir = create_run_dir(config.reports_dir, config.endpoint)
        interrupts.note_run_dir(run_dir)
        record_run(run_dir, config, before, started)
        write_payload_set(payload_set, run_dir / "locust")
        outcome = None
        try:
            output = load_test(config, run_dir, before)
            invalid = instance_change(config, before)
            analysis = analyse(config, output, before.instances_under_test, invalid)
            outcome = apply_recommendation(config, before, analysis.recommendation, run_dir)
        except KeyboardInterrupt as stop:
            report_interrupted(run_dir, config, before, started, outcome, stop)
            raise
    result = build_result(
        config=config, region=before.region,
        instances_under_test=before.instances_under_test, steps=analysis.steps,
        load_seconds=output.load_seconds, search_stop_reason=output.summary.get("stop_reason"),
        generator=output.summary.get("step_meta"),
        capacity=analysis.capacity, recommendation=analysis.recommendation,
        apply=outcome, before=before.scaling_before, error=analysis.error, started_at=started,
        queue_model=analysis.queue_model, payloads=analysis.payloads,
        rates=analysis.rates,
    )
    result = publish_report(run_dir, result.published(aws_note=before.aws_note or None))
    if outcome is not None and outcome.exit_code == 2:
        raise InputError(f"{outcome.error} (report: {run_dir})")
    if result.error:
        raise RunError(result.error, run_dir=str(run_dir))
    return result
