"""`tuner simulate RUN_DIR`: what a target would do on the endpoint's real traffic.

The shell around `tuner.simulate.sweep`: loads the run (latency curve, capacity, scaling
settings), gets traffic from CloudWatch or a CSV, simulates the evaluated target, sweeps
targets for the cheapest one within the violation budget, and writes `simulation.json` and
two plots into the run directory, then re-renders the report so it includes them.

The recommendation carries its headroom (share of the per-instance capacity basis an
instance at the target leaves unused) and the busiest replayed minute's load as a share of
the basis; `summary["headroom"]` is the recommended target's, `summary["target_headroom"]`
the evaluated target's (see `tuner.simulate.sweep` for the basis and the burst margin).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tuner.config import TUNE_LIMITS  # noqa: E402
from tuner.errors import InputError  # noqa: E402
from tuner.inputs import Limit, number_problem, path_problem  # noqa: E402
from tuner.report.past_run import load_run  # noqa: E402
from tuner.report.render import (  # noqa: E402
    SIMULATION_FILE,
    SIMULATION_PLOTS,
    png_bytes,
    write_report,
)
from tuner.report.result import RunResult, json_safe  # noqa: E402
from tuner.report.runfiles import ReportRecord, checked  # noqa: E402
from tuner.scaling import aws  # noqa: E402
from tuner.simulate.sweep import (  # noqa: E402
    POISSON_Z_99,
    ScalingModel,
    SimulationResult,
    Sweep,
    curve_from_result,
    max_admissible_target,
    simulate,
    sweep_targets,
    target_grid,
)
from tuner.simulate.traffic import (  # noqa: E402
    CLOUDWATCH_MAX_DAYS,
    Traffic,
    fetch_cloudwatch,
    read_csv,
)

PLOTS = SIMULATION_PLOTS

@dataclass(frozen=True)
class SimulationOptions:
    traffic: str  # "cloudwatch" or a CSV path
    target: float | None = None
    min_capacity: int | None = None
    max_capacity: int | None = None
    days: float = 14.0
    instance_startup_minutes: int = 5
    price_per_instance_hour: float | None = None
    max_violation_minutes: int = 0
    burst_z: float = POISSON_Z_99  # quantile of a minute's Poisson count the target must fit


SIMULATION_LIMITS: dict[str, tuple[Limit, str]] = {
    "target": (Limit(0.01, 1e9), "invocations per instance per minute"),
    "min_capacity": TUNE_LIMITS["min_capacity"],
    "max_capacity": TUNE_LIMITS["max_capacity"],
    "days": (Limit(0, CLOUDWATCH_MAX_DAYS, low_open=True),
             "CloudWatch keeps one-minute datapoints for 15 days"),
    "instance_startup_minutes": (Limit(0, 1440, integer=True), "minutes"),
    "price_per_instance_hour": (Limit(0, 10_000, low_open=True), "dollars"),
    "max_violation_minutes": (Limit(0, 10_000_000, integer=True), "minutes"),
}
FLAGS = {"instance_startup_minutes": "--instance-startup"}
# The sweep's lowest target (a tenth of the basis, x 60, two decimals) must not round to 0.
MIN_RPS_PER_INSTANCE = 0.01


def check_options(options: SimulationOptions) -> None:
    """Every flag of `tuner simulate` finite and in range, before anything is read."""
    for key, (limit, hint) in SIMULATION_LIMITS.items():
        flag = FLAGS.get(key, "--" + key.replace("_", "-"))
        problem = number_problem(getattr(options, key), flag, limit, hint)
        if problem:
            raise InputError(problem)
    if options.traffic != "cloudwatch":
        problem = path_problem(options.traffic, "--traffic")
        if problem:
            raise InputError(problem)


def load_traffic(result: RunResult, options: SimulationOptions) -> Traffic:
    if options.traffic == "cloudwatch":
        region = aws.resolve_region(None if result.region == "-" else result.region)
        return fetch_cloudwatch(aws.client("cloudwatch", region), result.endpoint,
                                result.variant, options.days)
    return read_csv(Path(options.traffic))


def scaling_model(result: RunResult, options: SimulationOptions) -> ScalingModel:
    assert result.scalable_target is not None and result.policy is not None  # load_run's
    target = result.scalable_target
    config = result.policy["TargetTrackingScalingPolicyConfiguration"]
    low = options.min_capacity if options.min_capacity is not None else target["MinCapacity"]
    high = options.max_capacity if options.max_capacity is not None else target["MaxCapacity"]
    value = options.target if options.target is not None else config["TargetValue"]
    if low < 1 or high < low:
        raise InputError(f"capacity {low}-{high} is invalid: need 1 <= --min-capacity <= "
                         "--max-capacity")
    if not value > 0:
        raise InputError(f"--target {value} must be positive")
    if options.instance_startup_minutes < 0:
        raise InputError("--instance-startup must be 0 or more minutes")
    return ScalingModel(target=value, min_capacity=low, max_capacity=high,
                        scale_in_cooldown_s=config["ScaleInCooldown"],
                        scale_out_cooldown_s=config["ScaleOutCooldown"],
                        startup_minutes=options.instance_startup_minutes)


def model_target(result: RunResult) -> float:
    """The target the run recommended (the rule's: capacity x safety factor x 60)."""
    assert result.policy is not None
    return result.policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]


def plot_timeline(traffic: Traffic, run: SimulationResult, sla_ms: float) -> bytes:
    minutes = np.arange(traffic.minutes)
    fig, axes = plt.subplots(3, 1, figsize=(8, 6.5), sharex=True)
    axes[0].plot(minutes, traffic.invocations, linewidth=0.8)
    axes[0].set_ylabel("invocations/min")
    axes[0].set_title(f"Simulated target {run.target:g}: traffic, instances, latency")
    rows = run.timeline
    axes[1].step(minutes, [m.in_service for m in rows], where="post", label="in service")
    axes[1].step(minutes, [m.in_service + m.starting for m in rows], where="post",
                 linestyle="--", label="incl. starting")
    axes[1].set_ylabel("instances")
    axes[1].legend(fontsize=8)
    latency = np.array([m.latency_ms for m in rows])
    shown = np.where(np.isfinite(latency), latency, np.nan)
    axes[2].plot(minutes, shown, linewidth=0.8, label="latency at load")
    over = [m.minute for m in rows if m.violation]
    axes[2].scatter(over, [sla_ms] * len(over), color="red", s=6, label="SLA violated")
    axes[2].axhline(sla_ms, color="red", linestyle="--", linewidth=0.8)
    axes[2].set_ylabel("ms")
    axes[2].set_xlabel("minute")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_sweep(sweep: Sweep, rule_target: float, price: float | None,
               burst_limit: float) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 4))
    targets = [r.target for r in sweep.results]
    cost = [r.cost(price) if price else r.instance_hours for r in sweep.results]
    ax.plot(targets, cost, marker="o", label="cost ($)" if price else "instance-hours")
    ax.set_xlabel("target (invocations per instance per minute)")
    ax.set_ylabel("cost ($)" if price else "instance-hours")
    other = ax.twinx()
    other.plot(targets, [r.violation_minutes for r in sweep.results], marker="s",
               color="red", label="minutes over SLA")
    other.set_ylabel("minutes over SLA", color="red")
    ax.axvline(rule_target, color="grey", linestyle=":", label=f"0.5 rule {rule_target:g}")
    if burst_limit < max(targets):
        ax.axvspan(burst_limit, max(targets), color="orange", alpha=0.15,
                   label=f"no burst margin (> {burst_limit:,.0f})")
    if sweep.recommended:
        ax.axvline(sweep.recommended.target, color="green", linestyle="--",
                   label=f"recommended {sweep.recommended.target:g}")
    ax.legend(fontsize=8, loc="upper center")
    ax.set_title("Cost vs SLA violations by target")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def simulate_run(run_dir: Path, options: SimulationOptions) -> dict:
    """Simulate, sweep, write simulation.json + plots, re-render the report."""
    check_options(options)
    result = load_run(run_dir)
    # The report is re-rendered from this result: all of it must be sound, not only the
    # recommendation.
    checked(ReportRecord, result.to_json(), str(Path(run_dir) / "result.json"))
    model = scaling_model(result, options)
    try:
        curve = curve_from_result(result)
    except ValueError as exc:
        raise InputError(f"{run_dir}: {exc}") from None
    if curve.capacity_rps_per_instance < MIN_RPS_PER_INSTANCE:
        raise InputError(f"{run_dir}: a capacity basis of {curve.capacity_rps_per_instance:g} rps "
                         f"per instance is below {MIN_RPS_PER_INSTANCE:g}: too slow for per-minute "
                         "targets to simulate")
    traffic = load_traffic(result, options)
    evaluated = simulate(traffic.invocations, model, curve)
    rule_target = model_target(result)
    grid = target_grid(curve.capacity_rps_per_instance) + [rule_target, model.target]
    sweep = sweep_targets(traffic.invocations, model, curve, grid,
                          options.max_violation_minutes, z=options.burst_z)
    burst_limit = max_admissible_target(curve.capacity_rps_per_instance, options.burst_z)
    chosen = sweep.recommended or evaluated
    recommended = sweep.recommended
    summary = {
        **{key: value for key, value in evaluated.summary().items()
           if key not in ("headroom", "peak_load_share")},
        "cost": evaluated.cost(options.price_per_instance_hour),
        "recommended_target": recommended.target if recommended else None,
        "headroom": round(recommended.headroom, 4) if recommended else None,
        "target_headroom": round(evaluated.headroom, 4),
    }
    record = {
        "summary": summary,
        "traffic": traffic.describe(),
        "model": asdict(model),
        "rule_target": rule_target,
        "max_violation_minutes": options.max_violation_minutes,
        "price_per_instance_hour": options.price_per_instance_hour,
        "capacity_basis_rps_per_instance": curve.capacity_rps_per_instance,
        "burst_z": options.burst_z,
        "max_admissible_target": round(burst_limit, 2),
        "recommended": None if recommended is None else {
            **recommended.summary(), "admissible": True,
            "cost": recommended.cost(options.price_per_instance_hour)},
        "sweep": [{**row, "cost": r.cost(options.price_per_instance_hour)}
                  for row, r in zip(sweep.rows(), sweep.results, strict=True)],
        "timeline": chosen.timeline_rows(),
        "timeline_target": chosen.target,
    }
    (run_dir / PLOTS["timeline"]).write_bytes(
        plot_timeline(traffic, chosen, curve.sla_latency_ms))
    (run_dir / PLOTS["sweep"]).write_bytes(
        plot_sweep(sweep, rule_target, options.price_per_instance_hour, burst_limit))
    path = run_dir / SIMULATION_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(record), allow_nan=False))
    tmp.replace(path)
    write_report(run_dir, result)
    return record


def recommendation_text(record: dict) -> str:
    """The `recommended target` line of `tuner simulate`'s text output, with the headroom the
    recommendation leaves: a target is only as safe as the margin it keeps below capacity."""
    rec = record["recommended"]
    if rec is None:
        return "none keeps violations within budget with a burst margin"
    return (f"{rec['target']:g} (cheapest with <= {record['max_violation_minutes']} min over "
            f"SLA; headroom {rec['headroom']:.1%} of capacity, busiest minute at "
            f"{rec['peak_load_share']:.0%} of it)")
