"""The tuning steps as Prefect tasks: thin shells around the pure core and AWS adapters.

Each task does one thing a reader can name (preflight, load test, analyse, apply, report);
`flows/tune.py` only orders them. Tasks are not cached: each touches the outside world.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tuner import interrupts
from tuner.config import TuneConfig, ValidateConfig
from tuner.interrupts import deferred
from tuner.measure.analyse import Analysis, analyse_output
from tuner.measure.analysis import Recommendation
from tuner.measure.loadtest import (
    LoadTestOutput,
    hard_time_limit,
    read_payload_set,
    run_load_test,
)
from tuner.measure.progress import live_progress
from tuner.report.publish import publish_run, write_run_record
from tuner.report.render import render_markdown, steps_frame
from tuner.report.result import RunResult
from tuner.scaling import aws
from tuner.scaling.apply import (
    ApplyOutcome,
    apply_options,
    recommended_requests,
    rerun_command,
    safe_apply,
    unconsulted_dry_run,
)
from tuner.scaling.preflight import Preflight, check_candidate, check_endpoint
from tuner.scaling.release_gate import ValidationVerdict
from tuner.scaling.suspension import run_suspension_record


@task(name="preflight", cache_policy=NO_CACHE)
def preflight(config: TuneConfig) -> Preflight:
    """Endpoint exists and is InService; stale suspensions restored; capacity bounds
    resolved; nothing else written (`tuner.scaling.preflight.check_endpoint`)."""
    logger = get_run_logger()
    before = check_endpoint(config, logger.warning)
    if before.aws_note:
        logger.warning(before.aws_note)
    logger.info("preflight ok: %s/%s, %d instance(s) under test, capacity %d-%d",
                config.endpoint, config.variant, before.instances_under_test,
                before.min_capacity, before.max_capacity)
    return before


@task(name="load-test", cache_policy=NO_CACHE)
def load_test(config: TuneConfig, run_dir: Path, before: Preflight) -> LoadTestOutput:
    """Run the search; an autoscaling variant is held still meanwhile and restored after."""
    logger = get_run_logger()
    logger.info("load test: %s search from %g rps, at most %g s of load",
                config.search, config.start_rps, config.max_test_seconds)
    target = None if config.url else before.scaling_before.target
    autoscaling = aws.client("application-autoscaling", before.region) if target else None
    log = run_suspension_record(config.endpoint, config.variant, before.region,
                                Path(run_dir).name, hard_time_limit(config)) if target else None
    with aws.dynamic_scaling_suspended(autoscaling, target, log) as previous:
        if previous is not None:
            logger.info("dynamic scaling suspended for the test; will restore %s", previous)
        with live_progress(config.max_test_seconds) as show:
            def progress(line: str) -> None:
                logger.info(line)
                show(line)

            # The set the flow read before anything was touched (`write_payload_set`).
            output = run_load_test(config, run_dir / "locust", before.region, progress,
                                   read_payload_set(run_dir / "locust"))
    logger.info("load test done: %d steps, %.1f s of load (%s)", len(output.specs),
                output.load_seconds, output.summary.get("stop_reason"))
    return output


@task(name="check-instances", cache_policy=NO_CACHE)
def instance_change(config: TuneConfig, before: Preflight) -> str | None:
    """The per-instance figure is only valid if the instance count held during the test."""
    if config.url or not before.aws_consulted:
        return None
    now = aws.describe_variant(aws.client("sagemaker", before.region), config.endpoint,
                               config.variant).current_instance_count
    if now != before.endpoint_instances:
        return (f"the variant's instance count changed during the test ({before.endpoint_instances}"
                f" -> {now}): suspend autoscaling and re-run; nothing was applied")
    return None


@task(name="analyse", cache_policy=NO_CACHE)
def analyse(config: TuneConfig, output: LoadTestOutput, instances_under_test: int,
            invalid_reason: str | None) -> Analysis:
    """Recompute every verdict from the raw samples, then capacity and target."""
    analysis = analyse_output(config, output, instances_under_test, invalid_reason)
    capacity, recommendation = analysis.capacity, analysis.recommendation
    if capacity is not None and recommendation is not None:
        get_run_logger().info(
            "capacity %.1f rps (CI %.1f-%s) / %d instance(s): %.1f rps per instance -> "
            "target %.2f", capacity.max_sustainable_rps, capacity.last_pass_rps,
            "open" if capacity.ci_high_rps is None else f"{capacity.ci_high_rps:.1f}",
            instances_under_test, recommendation.max_rps_per_instance,
            recommendation.target_invocations_per_instance)
    return analysis


@task(name="apply", cache_policy=NO_CACHE)
def apply_recommendation(config: TuneConfig, before: Preflight,
                         recommendation: Recommendation | None,
                         run_dir: Path) -> ApplyOutcome | None:
    """The same safe apply as `tuner apply RUN_DIR`: plan, guardrails, write, verify."""
    if recommendation is None:
        return None
    target, policy = recommended_requests(config, before.min_capacity, before.max_capacity,
                                          recommendation.target_invocations_per_instance)
    logger = get_run_logger()
    if not before.aws_consulted:  # --url --dry-run with no endpoint to compare with
        outcome = unconsulted_dry_run(target, policy)
        for line in outcome.plan.lines():
            logger.info(line)
        logger.info("dry run: nothing written (AWS not consulted)")
        return outcome
    options = apply_options(config)
    with deferred():  # an apply that has begun finishes (or rolls back) before a signal acts
        outcome = safe_apply(region=before.region, target=target, policy=policy,
                             recommended_at=datetime.now(UTC), options=options,
                             audit_path=Path(run_dir).parent / "audit.jsonl", say=logger.info,
                             rerun=rerun_command(run_dir, options))
        interrupts.note("apply", f"the apply ended {outcome.status}")
    if outcome.error:
        logger.error("apply %s: %s", outcome.status, outcome.error)
    return outcome


def _artifact_key(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "endpoint"


@task(name="report", cache_policy=NO_CACHE)
def publish_report(run_dir: Path, result: RunResult) -> RunResult:
    """Write the run's report files and publish the same markdown and steps as artifacts;
    the record as published (with its run directory and drift).

    The run's drift against the previous comparable run goes into its report, and the
    reports directory's index.json / index.html are rebuilt to include it.
    """
    result, paths = publish_run(Path(run_dir), result.published(run_dir=str(run_dir)),
                                Path(run_dir).parent.parent)
    drift = result.drift
    if drift and drift["flagged"]:
        get_run_logger().warning("capacity drift %+.1f%% from %s", 100 * drift["change"],
                                 drift["previous_run"])
    key = _artifact_key(f"tuning-{result.endpoint}-{result.variant}")
    view = result.to_json()
    create_markdown_artifact(render_markdown(view), key=key,
                             description=f"Scaling report for {result.endpoint}")
    if result.steps:
        rows = steps_frame(view).astype(object).fillna("").to_dict(orient="records")
        create_table_artifact(rows, key=key + "-steps", description="Load test steps")
    get_run_logger().info("report: %s", paths["html"])
    return result


@task(name="record-run", cache_policy=NO_CACHE)
def record_run(run_dir: Path, config: TuneConfig, before: Preflight, started: datetime) -> None:
    """run.json: what `tuner report` rebuilds the report from (`report.publish`)."""
    write_run_record(run_dir, config, before, started)


@task(name="validate-preflight", cache_policy=NO_CACHE)
def validate_preflight(config: ValidateConfig) -> Preflight:
    """A container URL needs no AWS at all; an endpoint is checked like `tune` does
    (`tuner.scaling.preflight.check_candidate`)."""
    return check_candidate(config, get_run_logger().warning)


def log_verdict(verdict: ValidationVerdict | None) -> ValidationVerdict | None:
    """The release gate's verdict (`tuner.report.baseline.judge_candidate`), logged."""
    if verdict is not None:
        get_run_logger().info("validation %s: %s", "passed" if verdict.passed else "FAILED",
                              "; ".join(verdict.reasons) or f"change {verdict.change:+.1%}")
    return verdict
