"""`tuner`: the command line. Parses flags, then hands over to the Prefect flow.

Exit codes: 0 ok, 2 bad input (one line on stderr, nothing written), 1 failure during the
run. The last line of stdout is the run directory's path, and a run's last line on the
terminal too (Prefect's temporary server is stopped before it is printed).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tuner.config import build_config, load_toml, load_toml_raw
from tuner.errors import InputError, RunError, TunerError

if TYPE_CHECKING:  # annotations only: the CLI imports the library lazily (fast --help)
    from tuner.report.result import RunResult

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Load-test SageMaker endpoints and set their autoscaling target.")

Opt = typer.Option
# The payload-set flags `tune` and `validate` share (`tuner worker` repeats the master's).
PayloadsOption = Annotated[str | None, Opt(
    help="a payload set: a directory, a .tar.gz, JSON Lines or a Data Capture export (local "
         "or s3://bucket/prefix/); each request draws one")]
PayloadSampleOption = Annotated[int | None, Opt(
    help="load at most N payloads of --payloads (a seeded sample)")]
SeedOption = Annotated[int | None, Opt(help="seed of the payload sample and draws [default: 0]")]


def _fail(error: TunerError) -> None:
    # One line whatever the message quotes (a path or a file's content may hold newlines).
    typer.echo("error: " + " ".join(str(error).splitlines()), err=True)
    if isinstance(error, RunError) and error.run_dir:
        typer.echo(f"report: {error.run_dir}/report.html", err=True)
        _end_with_run_dir(error.run_dir)
    raise typer.Exit(error.exit_code)


def print_summary(result: RunResult) -> None:
    rec = result.target_invocations_per_instance
    typer.echo(f"endpoint            {result.endpoint} / {result.variant} ({result.region})")
    assert result.capacity_ci is not None and rec is not None
    low, high = result.capacity_ci
    typer.echo(f"capacity            {result.max_sustainable_rps:.1f} rps on "
               f"{result.instances_under_test} instance(s), interval {low:.1f}-"
               f"{'open' if high is None else f'{high:.1f}'} rps")
    typer.echo(f"per instance        {result.max_rps_per_instance:.1f} rps "
               "(the interval's lower end)")
    typer.echo(f"target              {rec:.2f} invocations/instance/minute "
               f"(safety factor {result.safety_factor:g})")
    state = ("applied and verified" if result.applied else
             "dry run: nothing written" if result.dry_run else "no change needed")
    typer.echo(f"policy              {state}")
    typer.echo(f"load                {result.load_test_seconds:.0f} s in "
               f"{len(result.steps)} steps")
    typer.echo(f"report              {result.run_dir}/report.html")


def run_tune(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RunResult:
    """Validate, run the flow, print the summary; the command prints the run directory
    last (`_end_with_run_dir`), after whatever else it shows (the demo reads back)."""
    config = build_config(file_values, flag_values)
    from tuner.measure.loadtest import config_payload_set
    from tuner.scaling.preflight import check_endpoint

    # Local and AWS checks first, in seconds; Prefect loads only once they pass. The
    # payload set is read here to refuse a bad one before anything else (the load test
    # reads it again into the run directory).
    if config.payloads is not None:
        config_payload_set(config)
    check_endpoint(config, say=lambda line: typer.echo(line, err=True))
    from flows.runtime import quiet

    quiet()
    from flows.tune import tune_endpoint

    result = tune_endpoint(config)
    print_summary(result)
    return result


@app.command()
def tune(
    endpoint: Annotated[str | None, Opt(help="SageMaker endpoint name")] = None,
    variant: Annotated[str | None, Opt(help="production variant [default: AllTraffic]")] = None,
    region: Annotated[str | None, Opt(help="AWS region (default: the standard chain)")] = None,
    url: Annotated[str | None, Opt(help="test a model container's URL directly "
                                        "(POST /invocations) instead of the runtime API")] = None,
    instances: Annotated[int | None, Opt(help="instances behind --url [default: 1]")] = None,
    payload: Annotated[Path | None, Opt(help="request body file")] = None,
    payloads: PayloadsOption = None,
    payload_sample: PayloadSampleOption = None,
    seed: SeedOption = None,
    content_type: Annotated[str | None, Opt(help="[default: application/json]")] = None,
    sla_percentile: Annotated[float | None, Opt(help="[default: 90]")] = None,
    sla_latency_ms: Annotated[float | None, Opt(help="latency SLA in ms (required)")] = None,
    max_error_rate: Annotated[float | None, Opt(help="[default: 0.01]")] = None,
    min_capacity: Annotated[int | None, Opt(help="[default: the registered one]")] = None,
    max_capacity: Annotated[int | None, Opt(help="[default: the registered one]")] = None,
    safety_factor: Annotated[float | None, Opt(help="in (0, 1] [default: 0.5]")] = None,
    scale_in_cooldown: Annotated[int | None, Opt(help="seconds [default: 300]")] = None,
    scale_out_cooldown: Annotated[int | None, Opt(help="seconds [default: 300]")] = None,
    dry_run: Annotated[bool | None, Opt("--dry-run", help="show the plan, write nothing")] = None,
    replace_custom: Annotated[bool | None, Opt(
        "--replace-custom", help="delete other policies on the variant once ours is in")] = None,
    keep_suspended: Annotated[bool | None, Opt(
        "--keep-suspended", help="leave suspended dynamic scaling suspended (default: the "
        "apply resumes it, so the policy acts)")] = None,
    force: Annotated[bool | None, Opt("--force", help="override the --max-change guard")] = None,
    max_change: Annotated[float | None, Opt(help="largest target change without --force "
                                                 "[default: 0.5]")] = None,
    max_test_seconds: Annotated[float | None, Opt(help="load budget [default: 120]")] = None,
    search: Annotated[str | None, Opt(help="adaptive | linear [default: adaptive]")] = None,
    start_rps: Annotated[float | None, Opt(help="first step's rate [default: 10]")] = None,
    linear_step_rps: Annotated[float | None, Opt(help="linear search increment")] = None,
    max_rps: Annotated[float | None, Opt(help="never offer more than this")] = None,
    precision: Annotated[float | None, Opt(help="bracket width to stop at [default: 0.03]")] = None,
    confidence: Annotated[float | None, Opt(help="[default: 0.95]")] = None,
    arrivals: Annotated[str | None, Opt(
        help="poisson | uniform (optimistic) [default: poisson]")] = None,
    processes: Annotated[int | None, Opt(help="Locust worker processes [default: 1]")] = None,
    runtime_client: Annotated[str | None, Opt(help="signed (fast) | boto3 [default: signed]")]
    = None,
    master: Annotated[bool | None, Opt("--master", help="be a Locust master for `tuner "
                                                        "worker`s on other machines")] = None,
    expect_workers: Annotated[int | None, Opt(help="workers a --master waits for")] = None,
    master_port: Annotated[int | None, Opt(help="[default: 5557]")] = None,
    request_timeout_seconds: Annotated[float | None, Opt(help="[default: 10x SLA, >= 2 s]")] = None,
    max_in_flight: Annotated[int | None, Opt(help="cap on concurrent requests per lane "
                                                   "[default: sized per step, <= 8000]")] = None,
    config: Annotated[Path | None, Opt(help="TOML file with the same keys")] = None,
    reports_dir: Annotated[Path | None, Opt(help="[default: reports]")] = None,
) -> None:
    """Measure capacity, derive the target, apply the built-in policy, write a report."""
    flags = {k: v for k, v in locals().items() if k != "config"}
    try:
        file_values = load_toml(config) if config else {}
        result = run_tune(file_values, flags)
    except TunerError as error:
        _fail(error)
    _end_with_run_dir(result.run_dir)


@app.command("apply")
def apply_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory printed by `tuner tune`")],
    dry_run: Annotated[bool, Opt("--dry-run", help="show the plan, write nothing")] = False,
    replace_custom: Annotated[bool, Opt(
        "--replace-custom", help="delete other policies on the variant once ours is in")] = False,
    force: Annotated[bool, Opt("--force", help="override the change and age guards")] = False,
    max_change: Annotated[float, Opt(help="largest target change without --force")] = 0.5,
    max_age: Annotated[str, Opt(help="oldest recommendation without --force")] = "7d",
    keep_suspended: Annotated[bool, Opt(
        "--keep-suspended", help="leave suspended dynamic scaling suspended (default: resume "
        "it, so the policy acts)")] = False,
) -> None:
    """Apply a past run's recommendation without re-testing."""
    from tuner.interrupts import deferred
    from tuner.report.past_run import apply_run, load_run
    from tuner.scaling.apply import ApplyOptions, check_options, parse_age
    from tuner.scaling.suspension import check_markers

    try:
        check_options(max_change)
        options = ApplyOptions(dry_run=dry_run, replace_custom=replace_custom, force=force,
                               max_change=max_change, max_age=parse_age(max_age),
                               keep_suspended=keep_suspended)
        run = load_run(run_dir)
        check_markers(run.region, run.endpoint, run.variant, typer.echo,
                      write=not dry_run)
        with deferred():  # an apply that has begun finishes (or rolls back) first
            outcome = apply_run(run_dir, options, say=typer.echo)
    except TunerError as error:
        _fail(error)
    if outcome.error:
        typer.echo(f"error: {outcome.error}", err=True)
        raise typer.Exit(outcome.exit_code)
    typer.echo(f"result: {outcome.status}")


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory printed by `tuner tune`")],
    format: Annotated[str, Opt("--format", help="terraform | cloudformation | cli")] = "terraform",
) -> None:
    """Print the scalable target and built-in policy as Terraform, CloudFormation or CLI."""
    from tuner.report.past_run import load_run
    from tuner.scaling.iac import render

    try:
        result = load_run(run_dir)
        typer.echo(render(format, result.scalable_target, result.policy, result.region),
                   nl=False)
    except TunerError as error:
        _fail(error)


@app.command("simulate")
def simulate_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory printed by `tuner tune`")],
    traffic: Annotated[str, Opt(help="'cloudwatch' or a CSV file (timestamp,invocations)")],
    target: Annotated[float | None, Opt(help="target to evaluate [default: the run's]")] = None,
    min_capacity: Annotated[int | None, Opt(help="[default: the run's]")] = None,
    max_capacity: Annotated[int | None, Opt(help="[default: the run's]")] = None,
    days: Annotated[float, Opt(help="CloudWatch history to fetch")] = 14.0,
    instance_startup: Annotated[int, Opt(help="minutes before a new instance serves")] = 5,
    price_per_instance_hour: Annotated[float | None, Opt(help="for a cost figure")] = None,
    max_violation_minutes: Annotated[int, Opt(help="SLA budget for the optimiser")] = 0,
    json_output: Annotated[bool, Opt("--json", help="print the summary as JSON")] = False,
) -> None:
    """Replay real traffic through target tracking and the measured latency curve."""
    from tuner.simulate.command import SimulationOptions, recommendation_text, simulate_run

    try:
        record = simulate_run(run_dir, SimulationOptions(
            traffic=traffic, target=target, min_capacity=min_capacity,
            max_capacity=max_capacity, days=days, instance_startup_minutes=instance_startup,
            price_per_instance_hour=price_per_instance_hour,
            max_violation_minutes=max_violation_minutes))
    except TunerError as error:
        _fail(error)
    summary = record["summary"]
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"traffic             {record['traffic']}")
    typer.echo(f"target              {summary['target']:g} invocations/instance/minute")
    typer.echo(f"instance-hours      {summary['instance_hours']:.1f}"
               + (f" (${summary['cost']:,.2f})" if summary["cost"] is not None else ""))
    typer.echo(f"minutes over SLA    {summary['violation_minutes']}")
    typer.echo(f"peak instances      {summary['peak_instances']}")
    typer.echo(f"scaling actions     {summary['scaling_actions']}")
    typer.echo("recommended target  " + recommendation_text(record))
    typer.echo(f"report              {run_dir}/report.html")


@app.command("validate")
def validate_command(
    baseline: Annotated[Path, Opt(help="the baseline run directory")],
    url: Annotated[str | None, Opt(help="a candidate container's URL")] = None,
    endpoint: Annotated[str | None, Opt(help="a deployed candidate endpoint")] = None,
    variant: Annotated[str, Opt()] = "AllTraffic",
    region: Annotated[str | None, Opt()] = None,
    instances: Annotated[int | None, Opt(help="instances behind --url [default: 1]")] = None,
    payload: Annotated[Path | None, Opt(help="request body file")] = None,
    payloads: PayloadsOption = None,
    payload_sample: PayloadSampleOption = None,
    seed: SeedOption = None,
    content_type: Annotated[str | None, Opt(help="[default: application/json]")] = None,
    max_regression: Annotated[float, Opt(help="allowed per-instance capacity drop")] = 0.1,
    expected_peak_rps: Annotated[float | None, Opt(help="peak the variant must serve")] = None,
    max_capacity: Annotated[int | None, Opt(help="[default: the baseline's]")] = None,
    max_test_seconds: Annotated[float, Opt(help="load budget")] = 120.0,
    processes: Annotated[int, Opt(help="Locust worker processes")] = 1,
    reports_dir: Annotated[Path, Opt()] = Path("reports"),
) -> None:
    """Gate a release: fail (exit 1) if the candidate lost capacity against a baseline."""
    flags = dict(locals())
    from tuner.config import build_validate_config

    try:
        config = build_validate_config(flags)
        if config.endpoint:  # local-first: a typo is "not found" before Prefect loads
            from tuner.scaling.aws import resolve_region
            from tuner.scaling.preflight import inspect_variant

            inspect_variant(resolve_region(config.region), config.endpoint, config.variant,
                            lambda line: typer.echo(line, err=True))
        # The baseline and the candidate's payload set are input too: a corrupt or hostile
        # baseline, or a set it cannot be compared with, is refused before any flow starts
        # (the flow reads them again).
        from tuner.report.baseline import candidate_requests, read_baseline

        candidate_requests(config, read_baseline(config.baseline))
        from flows.runtime import quiet

        quiet()
        from flows.validate import validate_capacity

        result = validate_capacity(config)
    except TunerError as error:
        _fail(error)
    verdict = result.validation or {}
    typer.echo(f"validation          passed: {verdict['candidate_rps_per_instance']:.1f} rps "
               f"per instance vs baseline {verdict['baseline_rps_per_instance']:.1f} "
               f"({100 * verdict['change']:+.1f}%)")
    typer.echo(f"report              {result.run_dir}/report.html")
    _end_with_run_dir(result.run_dir)


@app.command("schedule")
def schedule_command(
    cron: Annotated[str, Opt(help='cron schedule, e.g. "0 3 * * 1" (Mondays 03:00)')],
    config: Annotated[Path, Opt(help="TOML file with the tune keys; apply = true to apply")],
    name: Annotated[str, Opt(help="deployment name")] = "scheduled-tune",
    timezone: Annotated[str, Opt(help="the cron's time zone")] = "UTC",
) -> None:
    """Serve the tune flow on a cron schedule (dry runs unless the config says apply = true)."""
    from flows.schedule import scheduled_config, validate_cron

    try:
        validate_cron(cron, timezone)
        tune_config = scheduled_config(load_toml_raw(config), config)
    except TunerError as error:
        _fail(error)
    from flows.runtime import serve
    from flows.schedule import deployment

    mode = "dry runs" if tune_config.dry_run else "APPLYING targets"
    typer.echo(f"serving tune-endpoint/{name} on '{cron}' ({timezone}), {mode}; Ctrl-C stops",
               err=True)
    serve(deployment(tune_config, cron, name, timezone))


@app.command("worker")
def worker_command(
    master_host: Annotated[str, Opt(help="host of the `tuner tune --master` run")],
    master_port: Annotated[int, Opt(help="its --master-port")] = 5557,
    url: Annotated[str | None, Opt(help="the same --url the master tests")] = None,
    endpoint: Annotated[str | None, Opt(help="the same --endpoint (runtime API)")] = None,
    variant: Annotated[str, Opt()] = "AllTraffic",
    region: Annotated[str | None, Opt()] = None,
    payload: Annotated[Path | None, Opt(help="the same request body file")] = None,
    payloads: Annotated[str | None, Opt(help="the same --payloads source")] = None,
    payload_sample: Annotated[int | None, Opt(help="the same --payload-sample")] = None,
    seed: Annotated[int, Opt(help="the same --seed")] = 0,
    content_type: Annotated[str | None, Opt(help="the same --content-type")] = None,
    runtime_client: Annotated[str, Opt(help="signed | boto3")] = "signed",
    processes: Annotated[int, Opt(help="worker processes here (one per core)")] = 1,
) -> None:
    """Send load for a `tuner tune --master` run on another machine (Locust worker)."""
    import subprocess
    import tempfile

    from tuner.config import check_worker
    from tuner.measure.loadtest import (
        locustfile_for,
        payload_set_for,
        worker_plan,
        write_payload_set,
    )
    from tuner.measure.loadtest import worker_command as command_for

    try:
        check_worker({"master_host": master_host, "master_port": master_port,
                      "endpoint": endpoint, "variant": variant, "region": region,
                      "processes": processes, "runtime_client": runtime_client, "url": url,
                      "payload": payload, "payloads": payloads,
                      "payload_sample": payload_sample, "seed": seed,
                      "content_type": content_type})
        if endpoint is not None and url is None:  # the runtime API: the region it calls
            from tuner.scaling.aws import resolve_region

            region = resolve_region(region)
        payload_set = payload_set_for(payload, payloads, payload_sample, seed, content_type)
    except TunerError as error:
        _fail(error)
    with tempfile.TemporaryDirectory(prefix="tuner-worker-") as scratch:
        try:
            plan = worker_plan(url, endpoint, variant, region,
                               write_payload_set(payload_set, Path(scratch)))
        except TunerError as error:
            _fail(error)
        plan_file = Path(scratch) / "plan.json"
        plan_file.write_text(json.dumps(plan))
        command = command_for(locustfile_for(url, runtime_client), master_host, master_port,
                              processes)
        typer.echo(f"worker: connecting to {master_host}:{master_port} sending "
                   f"{len(payload_set.payloads)} payload(s), set sha256 "
                   f"{payload_set.sha256()[:12]}", err=True)
        done = subprocess.run(command, env={**os.environ, "TUNER_PLAN": str(plan_file),
                                            "TUNER_SUPERVISOR_PID": str(os.getpid())})
    raise typer.Exit(done.returncode)


@app.command("recover")
def recover_command(
    endpoint: Annotated[str, Opt(help="the endpoint a tuning run was measuring")],
    variant: Annotated[str | None, Opt(help="only this variant [default: every variant]")]
    = None,
    region: Annotated[str | None, Opt(help="AWS region (default: the standard chain)")] = None,
    force: Annotated[bool, Opt("--force", help="restore even if the run that suspended "
                                               "scaling may still be alive")] = False,
) -> None:
    """Restore dynamic scaling that a killed or crashed run left suspended.

    Runs record every suspension on the endpoint's tags before making it; this reads those
    records and registers each variant's previous SuspendedState again, verified.
    """
    from tuner.inputs import region_problem, sagemaker_name_problem
    from tuner.scaling.aws import resolve_region
    from tuner.scaling.suspension import recover

    try:
        for problem in (sagemaker_name_problem(endpoint, "--endpoint"),
                        None if variant is None else sagemaker_name_problem(variant, "--variant"),
                        None if region is None else region_problem(region)):
            if problem:
                raise InputError(problem)
        recover(resolve_region(region), endpoint, variant, force, typer.echo)
    except TunerError as error:
        _fail(error)


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
) -> None:
    """Regenerate a run's report from its raw data (after template changes or a crash)."""
    from tuner.report.regenerate import regenerate_report

    try:
        result = regenerate_report(run_dir)
    except TunerError as error:
        _fail(error)
    typer.echo(f"report              {run_dir}/report.html")
    typer.echo(result.run_dir)


@app.command("history")
def history_command(
    endpoint: Annotated[str | None, Opt(help="only this endpoint")] = None,
    reports_dir: Annotated[Path, Opt(help="where run directories are")] = Path("reports"),
    json_output: Annotated[bool, Opt("--json", help="print the runs as JSON")] = False,
) -> None:
    """List past runs with their capacity trend and drift flags."""
    from dataclasses import asdict

    from tuner.report.history import update_index

    if not reports_dir.is_dir():
        _fail(InputError(f"--reports-dir {reports_dir} does not exist"))
    entries = [e for e in update_index(reports_dir) if endpoint in (None, e.endpoint)]
    if json_output:
        typer.echo(json.dumps([{**asdict(e), "drifted": e.drifted} for e in entries],
                              indent=2))
        return
    if not entries:
        typer.echo("no runs" + (f" for {endpoint}" if endpoint else ""))
        return
    typer.echo(f"{'started':<26} {'endpoint/variant':<28} {'kind':<8} {'capacity':>9} "
               f"{'interval':>15} {'target':>9} {'drift':>7}  status")
    for e in entries:
        interval = (f"{e.capacity_ci[0]:.1f}-{e.capacity_ci[1]:.1f}"
                    if e.capacity_ci and e.capacity_ci[1] else "")
        drift = "" if e.drift is None else f"{100 * e.drift:+.1f}%"
        status = ("DRIFT " if e.drifted else "") + (
            "error" if e.error else "applied" if e.applied else "")
        capacity = "" if e.capacity_rps is None else f"{e.capacity_rps:.1f}"
        target = "" if e.target is None else f"{e.target:g}"
        typer.echo(f"{e.time:<26} {e.endpoint + '/' + e.variant:<28} {e.kind:<8} "
                   f"{capacity:>9} {interval:>15} {target:>9} {drift:>7}  {status}")
    typer.echo(f"index               {reports_dir / 'index.html'}")


@app.command()
def demo(
    reports_dir: Annotated[Path, Opt(help="where the report goes")] = Path("reports"),
    max_test_seconds: Annotated[float, Opt(help="load budget")] = 120.0,
) -> None:
    """Run the whole flow locally: bundled model server + local moto AWS API."""
    from tuner.demo.run import run_demo

    try:
        result = run_demo(reports_dir, run_tune, max_test_seconds)
    except TunerError as error:
        _fail(error)
    _end_with_run_dir(result.run_dir)


def main() -> None:
    """Run the CLI; SIGINT/SIGTERM end it within seconds, scaling restored, 130/143."""
    from tuner import interrupts

    try:
        with interrupts.handled():
            app()  # typer turns a KeyboardInterrupt into exit 130, whatever the signal
    except KeyboardInterrupt as stop:
        _interrupted(stop)
    except SystemExit:
        if interrupts.received() is not None:
            _interrupted(None)
        raise


def _interrupted(stop: BaseException | None) -> None:
    """Say what an interrupted run left (its report, the scaling as found) and exit with
    128 + the signal's number."""
    from tuner import interrupts

    interrupts.ignore_signals()  # a second Ctrl-C must not skip the exit below
    run_dir = interrupts.run_dir()
    report = f"; report: {run_dir}/report.html" if run_dir else ""
    scaling = interrupts.fact("scaling") or "the endpoint's scaling was not touched"
    applied = interrupts.fact("apply") or "nothing was applied"
    typer.echo(f"interrupted by {interrupts.signal_name(stop)}: {scaling}; {applied}{report}",
               err=True)
    if run_dir:
        typer.echo(run_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    from flows.runtime import stop_temporary_server

    stop_temporary_server(lambda line: typer.echo(line, err=True))
    # Not sys.exit: at interpreter exit Prefect's log queue could keep draining to the
    # temporary server, already stopped, and never return.
    os._exit(interrupts.exit_code(stop))


def _end_with_run_dir(run_dir: str | None) -> None:
    """Print the run directory as the last line a person sees. Left to itself, Prefect
    stops its temporary server at interpreter exit and logs "Stopping temporary server"
    to stderr then, after anything printed here: so it is shut down first."""
    from flows.runtime import shut_down

    shut_down(lambda line: typer.echo(line, err=True))
    sys.stderr.flush()
    typer.echo(str(run_dir))


if __name__ == "__main__":
    main()
