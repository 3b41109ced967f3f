"""Replay traffic through a model of SageMaker target tracking and the measured latency curve.

Pure functions, minute by minute, to say what a target will *do* on an endpoint's real
traffic before it is applied: instance-hours (cost), minutes over the SLA, peak instances,
scaling actions, headroom, and a timeline.

The model (as observed on SageMaker; see shared reference facts):
- the metric is invocations per minute / instances in service;
- scale-out alarm: metric > target for 3 consecutive one-minute datapoints; scale-in alarm:
  metric < 0.9 x target for 15;
- desired = ceil(in service x metric / target) (the load the serving instances carry over
  the target), within [min, max]. Instances still starting are not multiplied in: the
  metric is already normalised by the ones in service, so counting the starting ones again
  would inflate every desired count taken while a scale-out is under way;
- within the scale-out cooldown a scale-out still happens when the newly desired capacity
  is larger than the capacity the last scale-out set (AWS: capacity is not increased again
  "unless either a larger scale out is triggered or the cooldown period ends"); no scale-in
  within the scale-in or scale-out cooldown; a scale-out may interrupt a scale-in cooldown;
  no scale-in while instances are still starting;
- new instances serve only after `startup_minutes` (billed from launch); removed ones stop
  at once.

Capacity basis. The per-instance capacity a minute is judged against is the LOWER end of
the run's capacity interval (`capacity_ci[0]` / instances under test): the tool defines
capacity as the highest mean *Poisson* arrival rate meeting the SLA, and the measurement is
uncertain, so the low end is the rate we can claim. When the run carries a queueing-model
estimate (`queue_model.poisson_capacity_rps`, same units as `capacity_ci`: the run's
instances together), the basis is the smaller of the two.

Burstiness. Traffic within a minute arrives at least as burstily as a Poisson process. The
basis is a Poisson capacity, so a minute violates the SLA when its per-instance *mean* rate
exceeds the basis, or when, below the basis, the measured curve (linear interpolation, made
non-decreasing) puts the SLA percentile over the SLA. A replayed minute is a realised
count, so it gets no extra noise. A target's steady state does: target tracking lets each instance
sit at up to target/60 rps indefinitely (it acts only after 3 minutes above), and a
minute's Poisson count with mean T exceeds T + z x sqrt(T) only 1% of the time (z = 2.326).
A target is therefore *admissible* only if that 99th-percentile minute stays within the
basis (`burst_margin`, `admissible`); the sweep recommends the cheapest admissible target
within the violation budget, ties going to the lower target (more headroom), and reports
each target's headroom = 1 - (target/60) / basis.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from tuner.measure.analysis import Verdict

if TYPE_CHECKING:  # annotations only: the simulator stays free of the record's readers
    from tuner.report.result import RunResult

__all__ = [
    "POISSON_Z_99",
    "LatencyCurve",
    "Minute",
    "ScalingModel",
    "SimulationResult",
    "Sweep",
    "admissible",
    "burst_margin",
    "capacity_basis",
    "curve_from_result",
    "headroom",
    "max_admissible_target",
    "simulate",
    "sweep_targets",
    "target_grid",
]

# One-sided standard-normal 99% quantile: a Poisson count exceeds mean + z sd in 1% of minutes.
POISSON_Z_99 = 2.326


@dataclass(frozen=True)
class ScalingModel:
    target: float  # invocations per instance per minute
    min_capacity: int
    max_capacity: int
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 300
    startup_minutes: int = 5
    initial_instances: int | None = None  # default: what the first minute needs


@dataclass(frozen=True)
class LatencyCurve:
    """SLA-percentile latency as a function of per-instance request rate.

    `capacity_rps_per_instance` is the capacity *basis* (see the module docstring): the
    highest mean Poisson arrival rate per instance we can claim meets the SLA.
    """

    rps_per_instance: tuple[float, ...]
    latency_ms: tuple[float, ...]
    capacity_rps_per_instance: float
    sla_latency_ms: float

    def latency_at(self, rps: float) -> float:
        """Latency at a per-instance *mean* rate; infinite above the capacity basis, because
        the basis already is the highest mean Poisson rate that meets the SLA."""
        if rps > self.capacity_rps_per_instance:
            return math.inf
        return float(np.interp(rps, self.rps_per_instance, self.latency_ms))

    def violates(self, rps: float) -> bool:
        return self.latency_at(rps) > self.sla_latency_ms


def capacity_basis(result: RunResult) -> float:
    """Per-instance capacity to judge minutes by: the capacity interval's lower end, or the
    queueing model's Poisson capacity when that is lower. Both are rates for the endpoint as
    tested (`queue_model.to_dict` says so for its own), i.e. the run's `instances_under_test`
    together, so both are divided by that count; a missing or non-finite model capacity is
    ignored, since the model is optional and fitted only when the run has enough samples."""
    instances = result.instances_under_test
    ci = result.capacity_ci
    if not ci or ci[0] is None:
        raise ValueError("the run has no capacity interval to take a capacity basis from")
    total = float(ci[0])
    queue_model = result.queue_model
    poisson = queue_model.get("poisson_capacity_rps") if isinstance(queue_model, dict) else None
    if (isinstance(poisson, int | float) and not isinstance(poisson, bool)
            and math.isfinite(poisson)):
        total = min(total, float(poisson))
    if not (math.isfinite(total) and total > 0):
        raise ValueError(f"the run's capacity basis {total:g} rps is not a positive rate")
    return total / instances


def curve_from_result(result: RunResult) -> LatencyCurve:
    """The latency curve of a tuning run, per instance, made non-decreasing, with the
    capacity basis as its capacity: the queue model's (Poisson arrivals) when the run has
    one, else the measured passing steps'."""
    instances = result.instances_under_test
    queue_model = result.queue_model
    if isinstance(queue_model, dict) and queue_model.get("curve"):
        # The queue model's curve: latency under Poisson arrivals at each mean rate, the
        # same view the report shows (the measured passes are a handful of its points).
        points = sorted((p["rps"] / instances, p["p_ms"]) for p in queue_model["curve"]
                        if p.get("p_ms") is not None and math.isfinite(p["p_ms"]))
    else:
        points = sorted(
            (s["achieved_rps"] / instances, s["sla_percentile_ms"]) for s in result.steps
            if s["sla_percentile_ms"] is not None and s["achieved_rps"] > 0
            and s["verdict"] == Verdict.PASS
        )
    if not points:
        raise ValueError("the run has no passing step to build a latency curve from")
    rps = [0.0] + [p[0] for p in points]
    latency = [points[0][1]] + list(np.maximum.accumulate([p[1] for p in points]))
    return LatencyCurve(tuple(rps), tuple(float(v) for v in latency), capacity_basis(result),
                        float(result.sla.latency_ms))


def headroom(target: float, capacity_rps_per_instance: float) -> float:
    """Share of the capacity basis left unused by an instance sitting at the target."""
    return float(1.0 - (target / 60.0) / capacity_rps_per_instance)


def burst_margin(target: float, z: float = POISSON_Z_99) -> float:
    """How far above its mean T a minute's Poisson count reaches at the z quantile, as a
    share of T: sd sqrt(T), so z / sqrt(T) (2.4% at T = 9,000, 7.4% at T = 1,000)."""
    return z / math.sqrt(target)


def admissible(target: float, capacity_rps_per_instance: float,
               z: float = POISSON_Z_99) -> bool:
    """Whether an instance held at the target indefinitely keeps its z-quantile minute within
    the capacity basis: (T/60) x (1 + z/sqrt(T)) <= basis, i.e. T + z sqrt(T) <= 60 x basis.

    The quantile is on the count (mean T, sd sqrt(T)); it is not written as
    T/60 <= basis x (1 - z/sqrt(T)), which agrees near the basis but applies the count's
    relative spread to the whole basis and so refuses every target of a slow endpoint
    (at 0.5 rps no target would pass, where T up to 19 invocations/min is safe).
    """
    return bool((target / 60.0) * (1.0 + burst_margin(target, z)) <= capacity_rps_per_instance)


def max_admissible_target(capacity_rps_per_instance: float, z: float = POISSON_Z_99) -> float:
    """The highest admissible target: the root of T + z sqrt(T) = 60 x basis (a quadratic in
    sqrt(T)); about 9,227 invocations/min for a 157.5 rps basis at z = 2.326."""
    budget = 60.0 * capacity_rps_per_instance
    return ((-z + math.sqrt(z * z + 4.0 * budget)) / 2.0) ** 2


@dataclass(frozen=True)
class Minute:
    minute: int
    invocations: float
    in_service: int
    starting: int
    metric: float
    latency_ms: float
    violation: bool
    action: str  # "", "out" or "in"


@dataclass(frozen=True)
class SimulationResult:
    target: float
    instance_hours: float
    violation_minutes: int
    peak_instances: int
    scaling_actions: int
    headroom: float  # 1 - (target/60) / capacity basis: what steady state leaves unused
    peak_load_share: float  # busiest replayed minute's per-instance mean rate / basis
    timeline: list[Minute]

    def cost(self, price_per_instance_hour: float | None) -> float | None:
        if price_per_instance_hour is None:
            return None
        return self.instance_hours * price_per_instance_hour

    def summary(self) -> dict:
        return {"target": self.target, "instance_hours": round(self.instance_hours, 3),
                "violation_minutes": self.violation_minutes,
                "peak_instances": self.peak_instances,
                "scaling_actions": self.scaling_actions,
                "headroom": round(self.headroom, 4),
                "peak_load_share": round(self.peak_load_share, 4)}

    def timeline_rows(self) -> list[dict]:
        return [asdict(m) for m in self.timeline]


def _clamp(value: int, model: ScalingModel) -> int:
    return max(model.min_capacity, min(model.max_capacity, value))


def simulate(invocations_per_minute: np.ndarray | list[float], model: ScalingModel,
             curve: LatencyCurve) -> SimulationResult:
    """Replay the traffic minute by minute under the target-tracking model."""
    traffic = np.asarray(invocations_per_minute, dtype=float)
    if traffic.size == 0:
        raise ValueError("no traffic to simulate")
    if model.target <= 0:
        raise ValueError("target must be positive")
    initial = model.initial_instances or math.ceil(traffic[0] / model.target) or 1
    in_service = _clamp(initial, model)
    starting: list[tuple[int, int]] = []  # (minute ready, count)
    above = below = 0
    last_out = last_in = -10**9
    last_out_capacity = 0  # capacity the last scale-out set
    out_cooldown = math.ceil(model.scale_out_cooldown_s / 60)
    in_cooldown = math.ceil(model.scale_in_cooldown_s / 60)
    timeline: list[Minute] = []
    instance_minutes = 0
    actions = 0
    peak = in_service
    peak_rps = 0.0
    for minute, invocations in enumerate(traffic):
        ready = sum(count for at, count in starting if at <= minute)
        starting = [(at, count) for at, count in starting if at > minute]
        in_service += ready
        pending = sum(count for _, count in starting)
        metric = invocations / in_service
        rps = invocations / 60.0 / in_service
        peak_rps = max(peak_rps, rps)
        latency = curve.latency_at(rps)  # inf above the basis: a violation either way
        above = above + 1 if metric > model.target else 0
        below = below + 1 if metric < 0.9 * model.target else 0
        capacity = in_service + pending
        desired = _clamp(math.ceil(in_service * metric / model.target), model)
        action = ""
        if above >= 3:
            # Within the cooldown only a scale-out larger than the last one proceeds.
            cooling = minute - last_out < out_cooldown
            bar = max(capacity, last_out_capacity) if cooling else capacity
            if desired > bar:
                starting.append((minute + model.startup_minutes, desired - capacity))
                last_out, last_out_capacity, action = minute, desired, "out"
        elif (below >= 15 and not pending and minute - last_in >= in_cooldown
              and minute - last_out >= out_cooldown and desired < capacity):
            in_service = desired
            last_in, action = minute, "in"
        if action:
            actions += 1
        pending = sum(count for _, count in starting)
        instance_minutes += in_service + pending
        peak = max(peak, in_service + pending)
        timeline.append(Minute(minute, float(invocations), in_service, pending, metric,
                               latency, latency > curve.sla_latency_ms, action))
    basis = curve.capacity_rps_per_instance
    return SimulationResult(
        target=model.target, instance_hours=instance_minutes / 60.0,
        violation_minutes=sum(1 for m in timeline if m.violation), peak_instances=peak,
        scaling_actions=actions, timeline=timeline,
        headroom=headroom(model.target, basis), peak_load_share=peak_rps / basis)


@dataclass(frozen=True)
class Sweep:
    results: list[SimulationResult]
    recommended: SimulationResult | None  # cheapest admissible within the violation budget
    admissible: list[bool]  # per result: its steady state keeps the burst margin

    def rows(self) -> list[dict]:
        return [{**r.summary(), "admissible": ok}
                for r, ok in zip(self.results, self.admissible, strict=True)]


def sweep_targets(traffic: np.ndarray | list[float], base: ScalingModel, curve: LatencyCurve,
                  targets: list[float], max_violation_minutes: int = 0,
                  z: float = POISSON_Z_99) -> Sweep:
    """Simulate each target; recommend the cheapest admissible one within the budget.

    The replayed trace alone would favour running instances at the basis (no violation up
    to it, and a higher target is never dearer), but target tracking lets every instance
    settle at target/60 rps for as long as traffic allows, so a target must also keep its
    z-quantile Poisson minute within the basis (`admissible`). Among equally cheap targets
    the lower one wins: it costs nothing and leaves more headroom.
    """
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(f"burst quantile z {z} must be 0 or more")
    results = []
    for target in sorted(set(targets)):
        model = ScalingModel(**{**asdict(base), "target": target})
        results.append(simulate(traffic, model, curve))
    flags = [admissible(r.target, curve.capacity_rps_per_instance, z) for r in results]
    within = [r for r, ok in zip(results, flags, strict=True)
              if ok and r.violation_minutes <= max_violation_minutes]
    recommended = min(within, key=lambda r: (r.instance_hours, r.target)) if within else None
    return Sweep(results, recommended, flags)


def target_grid(capacity_rps_per_instance: float, points: int = 19) -> list[float]:
    """Targets for safety factors 0.1 to 1.0 of the per-instance capacity basis."""
    factors = np.linspace(0.1, 1.0, points)
    return [round(capacity_rps_per_instance * 60 * f, 2) for f in factors]
