"""Replay traffic through a model of SageMaker target tracking and the measured latency curve.

Pure functions, minute by minute, to say what a target will *do* on an endpoint's real
traffic before it is applied: instance-hours (cost), minutes over the SLA, peak instances,
scaling actions, and a timeline.

The model (as observed on SageMaker; see shared reference facts):
- the metric is invocations per minute / instances in service;
- scale-out alarm: metric > target for 3 consecutive one-minute datapoints; scale-in alarm:
  metric < 0.9 x target for 15;
- desired = ceil(current capacity x metric / target), within [min, max];
- no further scale-out within the scale-out cooldown, no scale-in within the scale-in
  cooldown; a scale-out may interrupt a scale-in cooldown; no scale-in while instances are
  still starting;
- new instances serve only after `startup_minutes` (billed from launch); removed ones stop
  at once;
- latency each minute comes from the measured curve at the per-instance load (linear
  interpolation); above the measured capacity the SLA counts as violated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


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
    """SLA-percentile latency as a function of per-instance request rate."""

    rps_per_instance: tuple[float, ...]
    latency_ms: tuple[float, ...]
    capacity_rps_per_instance: float
    sla_latency_ms: float

    def latency_at(self, rps: float) -> float:
        if rps > self.capacity_rps_per_instance:
            return math.inf
        return float(np.interp(rps, self.rps_per_instance, self.latency_ms))

    def violates(self, rps: float) -> bool:
        return self.latency_at(rps) > self.sla_latency_ms


def curve_from_result(result: dict) -> LatencyCurve:
    """The latency curve a tuning run measured, per instance, made non-decreasing."""
    instances = result["instances_under_test"]
    points = sorted(
        (s["achieved_rps"] / instances, s["sla_percentile_ms"]) for s in result["steps"]
        if s["sla_percentile_ms"] is not None and s["achieved_rps"] > 0
        and s["verdict"] == "pass"
    )
    if not points:
        raise ValueError("the run has no passing step to build a latency curve from")
    rps = [0.0] + [p[0] for p in points]
    latency = [points[0][1]] + list(np.maximum.accumulate([p[1] for p in points]))
    capacity = result["capacity_ci"][0] / instances
    return LatencyCurve(tuple(rps), tuple(float(v) for v in latency), capacity,
                        float(result["sla"]["latency_ms"]))


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
    timeline: list[Minute]

    def cost(self, price_per_instance_hour: float | None) -> float | None:
        if price_per_instance_hour is None:
            return None
        return self.instance_hours * price_per_instance_hour

    def summary(self) -> dict:
        return {"target": self.target, "instance_hours": round(self.instance_hours, 3),
                "violation_minutes": self.violation_minutes,
                "peak_instances": self.peak_instances,
                "scaling_actions": self.scaling_actions}

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
    out_cooldown = math.ceil(model.scale_out_cooldown_s / 60)
    in_cooldown = math.ceil(model.scale_in_cooldown_s / 60)
    timeline: list[Minute] = []
    instance_minutes = 0
    actions = 0
    peak = in_service
    for minute, invocations in enumerate(traffic):
        ready = sum(count for at, count in starting if at <= minute)
        starting = [(at, count) for at, count in starting if at > minute]
        in_service += ready
        pending = sum(count for _, count in starting)
        metric = invocations / in_service
        latency = curve.latency_at(invocations / 60.0 / in_service)
        above = above + 1 if metric > model.target else 0
        below = below + 1 if metric < 0.9 * model.target else 0
        capacity = in_service + pending
        action = ""
        if above >= 3 and minute - last_out >= out_cooldown:
            desired = _clamp(math.ceil(capacity * metric / model.target), model)
            if desired > capacity:
                starting.append((minute + model.startup_minutes, desired - capacity))
                last_out, action = minute, "out"
        elif (below >= 15 and not pending and minute - last_in >= in_cooldown
              and minute - last_out >= out_cooldown):
            desired = _clamp(math.ceil(capacity * metric / model.target), model)
            if desired < capacity:
                in_service = desired
                last_in, action = minute, "in"
        if action:
            actions += 1
        pending = sum(count for _, count in starting)
        instance_minutes += in_service + pending
        peak = max(peak, in_service + pending)
        timeline.append(Minute(minute, float(invocations), in_service, pending, metric,
                               latency, latency > curve.sla_latency_ms, action))
    return SimulationResult(
        target=model.target, instance_hours=instance_minutes / 60.0,
        violation_minutes=sum(1 for m in timeline if m.violation), peak_instances=peak,
        scaling_actions=actions, timeline=timeline)


@dataclass(frozen=True)
class Sweep:
    results: list[SimulationResult]
    recommended: SimulationResult | None  # cheapest within the violation budget

    def rows(self) -> list[dict]:
        return [r.summary() for r in self.results]


def sweep_targets(traffic: np.ndarray | list[float], base: ScalingModel, curve: LatencyCurve,
                  targets: list[float], max_violation_minutes: int = 0) -> Sweep:
    """Simulate each target; recommend the cheapest whose violations stay within budget."""
    results = []
    for target in sorted(set(targets)):
        model = ScalingModel(**{**asdict(base), "target": target})
        results.append(simulate(traffic, model, curve))
    within = [r for r in results if r.violation_minutes <= max_violation_minutes]
    recommended = min(within, key=lambda r: (r.instance_hours, -r.target)) if within else None
    return Sweep(results, recommended)


def target_grid(capacity_rps_per_instance: float, points: int = 19) -> list[float]:
    """Targets for safety factors 0.1 to 1.0 of the measured per-instance capacity."""
    factors = np.linspace(0.1, 1.0, points)
    return [round(capacity_rps_per_instance * 60 * f, 2) for f in factors]
