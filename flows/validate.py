"""Prefect flow: pre-release capacity validation of a candidate against a baseline run.

Load-tests the candidate (a container URL or a deployed endpoint) with the baseline's SLA
and fails (flow state Failed, report saying why) on a per-instance capacity regression or
when max capacity cannot serve the expected peak. Never writes a scaling policy.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow

from flows.tasks import (
    analyse,
    instance_change,
    load_test,
    log_verdict,
    publish_report,
    record_run,
    validate_preflight,
)
from tuner import interrupts
from tuner.config import ValidateConfig, check_validate_config
from tuner.errors import RunError
from tuner.measure.loadtest import write_payload_set
from tuner.report.baseline import candidate_requests, judge_candidate, read_baseline
from tuner.report.publish import create_run_dir, report_interrupted
from tuner.report.result import RunResult, build_result


@flow(name="validate-capacity")
def validate_capacity(config: ValidateConfig) -> RunResult:
    """Measure the candidate, compare with the baseline, report; raise if it fails."""
    started = datetime.now(UTC)
    check_validate_config(config)  # again: a deployment's parameters come from the UI
    baseline = read_baseline(config.baseline)
    # The set is read once, before anything is touched: a bad or different one is refused.
    tune_config, payload_set = candidate_requests(config, baseline)
    with interrupts.handled():  # SIGINT/SIGTERM: scaling restored, report marked interrupted
        before = validate_preflight(config)
        run_dir = create_run_dir(config.reports_dir, tune_config.endpoint, suffix="-validate")
        interrupts.note_run_dir(run_dir)
        record_run(run_dir, tune_config, before, started)
        write_payload_set(payload_set, run_dir / "locust")
        try:
            output = load_test(tune_config, run_dir, before)
            invalid = instance_change(tune_config, before)
            analysis = analyse(tune_config, output, before.instances_under_test, invalid)
        except KeyboardInterrupt as stop:
            report_interrupted(run_dir, tune_config, before, started, None, stop)
            raise
    verdict = log_verdict(judge_candidate(config, baseline, analysis.capacity,
                                          before.instances_under_test))
    result = build_result(
        config=tune_config, region=before.region,
        instances_under_test=before.instances_under_test, steps=analysis.steps,
        load_seconds=output.load_seconds, search_stop_reason=output.summary.get("stop_reason"),
        generator=output.summary.get("step_meta"), capacity=analysis.capacity,
        recommendation=analysis.recommendation, apply=None, before=before.scaling_before,
        error=analysis.error, started_at=started,
        queue_model=analysis.queue_model, payloads=analysis.payloads,
        rates=analysis.rates,
    )
    result = publish_report(run_dir, result.published(validation={
        "baseline": str(config.baseline),
        **(verdict.to_dict() if verdict else {"passed": False})}))
    if result.error:
        raise RunError(result.error, run_dir=str(run_dir))
    if verdict is not None and not verdict.passed:
        raise RunError("validation failed: " + "; ".join(verdict.reasons), run_dir=str(run_dir))
    return result
