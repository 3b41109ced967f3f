"""Search decisions: which load to offer next, given what the steps so far showed.

Pure functions, like Locust's `LoadTestShape.tick()` but over results: the controller in
the Locust process calls `next_step(history, ...)` after each step and stops when it
returns None. Verdicts are taken per *rate*, pooling every step offered at that rate
(`analysis.pool_by_rate`), so a repeated step adds requests to the same question.

- "adaptive": exponential ramp until the first failing rate; then the samples go where
  they decide: an inconclusive rate inside the bracket is extended (repeated, its requests
  pooled) when the budget can afford the requests its slow share says it needs, else it is
  out of reach and caps the search; otherwise bisect between the last pass and the lowest
  rate that caps it, until the bracket is narrower than `precision`;
- "linear": Inference-Recommender-style stairs of fixed increments until the first fail;
  an inconclusive stair is extended, not taken as the end.

Steps last as long as the requests their percentile needs at that rate (p99 at 6 rps: about
50 s for the bare minimum), within the budget; `budget_advice` says what budget would
resolve a run that ended without an answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tuner.analysis import (
    RateEvidence,
    Sla,
    StepResult,
    StepSpec,
    Verdict,
    bracket,
    pool_by_rate,
    saturation_estimate,
    settle_time_s,
)
from tuner.stats import requests_to_show, samples_for_zero_exceedances

__all__ = ["Phase", "SearchSettings", "budget_advice", "drain_seconds", "next_step",
           "out_of_budget", "step_duration"]

# Requests a new rate's step aims for, as a multiple of the minimum that could support the
# SLA percentile with zero slow requests: enough to pass when the true slow share is about
# half of what the SLA allows.
SAMPLE_HEADROOM = 4
# Ramp steps only need to find a failing load: twice the zero-exceedance minimum, and never
# longer than this.
RAMP_HEADROOM = 2
RAMP_MAX_S = 8.0
# The queue needs a few latencies to fill after a pause: warm-up up to this long.
WARMUP_CAP_S = 5.0
MAX_PROBES_DOWN = 4
# A run whose bracket is still this wide when the budget ends has not resolved capacity.
UNRESOLVED_WIDTH = 0.25


class Phase(StrEnum):
    RAMP = "ramp"
    BISECT = "bisect"
    EXTEND = "extend"
    PROBE_DOWN = "probe-down"
    LINEAR = "linear"


@dataclass(frozen=True)
class SearchSettings:
    strategy: str = "adaptive"  # or "linear"
    start_rps: float = 10.0
    growth: float = 2.0
    linear_step_rps: float | None = None
    max_rps: float | None = None
    precision: float = 0.03
    percentile: float = 90.0
    confidence: float = 0.95
    warmup_s: float = 1.0
    min_step_s: float = 3.0
    max_step_s: float = 120.0
    budget_s: float = 120.0
    max_error_rate: float = 0.01
    sla_latency_ms: float = 0.0  # 0: unknown (warm-up stays warmup_s)

    @property
    def sla(self) -> Sla:
        return Sla(self.percentile, self.sla_latency_ms, self.max_error_rate, self.confidence)

    @property
    def quantile(self) -> float:
        return self.percentile / 100.0


def warmup_for(settings: SearchSettings, rate: float = 0.0,
               saturation_rps: float | None = None) -> float:
    """A step's unmeasured start: the configured warm-up, longer for slow models (two SLA
    latencies, capped), and long enough for the queue to settle at this rate near the
    saturation throughput seen so far (`analysis.settle_time_s`)."""
    base = max(settings.warmup_s, min(WARMUP_CAP_S, 2 * settings.sla_latency_ms / 1000.0))
    return max(base, settle_time_s(rate, saturation_rps))


def step_duration(rate: float, settings: SearchSettings, requests: int | None = None,
                  saturation_rps: float | None = None) -> float:
    """Warm-up, then long enough to collect `requests` (default: what a new rate needs)."""
    if requests is None:
        requests = SAMPLE_HEADROOM * samples_for_zero_exceedances(settings.quantile,
                                                                  settings.confidence)
    measure = min(max(requests / rate, settings.min_step_s), settings.max_step_s)
    return warmup_for(settings, rate, saturation_rps) + measure


def out_of_budget(settings: SearchSettings, used_s: float) -> bool:
    """Too little load budget left for even the shortest step."""
    return settings.budget_s - used_s < warmup_for(settings) + settings.min_step_s


def next_step(history: list[StepResult], settings: SearchSettings,
              used_s: float) -> StepSpec | None:
    """The next step to run, or None when the search is done or out of budget."""
    if out_of_budget(settings, used_s):
        return None
    remaining = settings.budget_s - used_s
    saturation = saturation_estimate(history)
    choice = _next(history, settings, remaining, saturation)
    if choice is None:
        return None
    rate, phase, requests = choice
    duration = step_duration(rate, settings, requests, saturation)
    warmup = warmup_for(settings, rate, saturation)
    if duration > remaining:
        duration = remaining  # the last step: whatever the budget still allows
        if duration - warmup < settings.min_step_s:
            return None
    return StepSpec(index=len(history), offered_rps=round(rate, 3), duration_s=duration,
                    warmup_s=warmup, phase=str(phase))


def _planning_share(rate: RateEvidence) -> float:
    """The slow share to plan with: shrunk toward zero-evidence (no 0 from few requests)."""
    return (rate.evidence.slow + 0.5) / (rate.evidence.requests + 1)


def extra_requests(rate: RateEvidence, settings: SearchSettings) -> int | None:
    """More requests this inconclusive rate needs to pass (if it leans to pass) or to fail
    (if it leans to fail), at the next look's confidence and with the correlation its
    requests showed; None when it sits on the threshold (no budget would do)."""
    evidence = rate.evidence
    share = _planning_share(rate)
    allowed = 1.0 - settings.quantile
    confidence = 1.0 - (1.0 - settings.confidence) / 2 ** (evidence.looks + 1)
    if share < allowed:
        needed = requests_to_show(share, settings.quantile, confidence)
    elif share > allowed:
        # The mirror test: the fast share significantly below the q the SLA needs.
        needed = requests_to_show(1 - share, allowed, confidence)
    else:
        return None
    base = _base_requests(settings)
    if evidence.effective_requests < base:
        # Too few requests to trust the share yet: first collect what a new rate gets.
        needed = min(needed, base)
    if needed >= 10**9:
        return None
    # At least double what the rate has: a noisy share should not end the search.
    extra_effective = max(needed - evidence.effective_requests, evidence.effective_requests)
    return math.ceil(extra_effective * evidence.correlation)


def _base_requests(settings: SearchSettings) -> int:
    return SAMPLE_HEADROOM * samples_for_zero_exceedances(settings.quantile, settings.confidence)


def _caps_search(rate: RateEvidence, settings: SearchSettings) -> bool:
    """An inconclusive rate the budget cannot resolve bounds the search only when its
    evidence is substantial and leans against the SLA: the capacity is about there."""
    return (rate.evidence.effective_requests >= _base_requests(settings)
            and _planning_share(rate) >= 1.0 - settings.quantile)


def _correlation_near(rates: list[RateEvidence], rate: float) -> float:
    """Raw requests per effective one, as measured at the nearest rates at or above."""
    above = [r for r in rates if r.offered_rps >= rate and r.evidence.requests]
    nearest = min(above, key=lambda r: r.offered_rps) if above else None
    below = [r for r in rates if r.offered_rps < rate and r.evidence.requests]
    closest_below = max(below, key=lambda r: r.offered_rps) if below else None
    values = [r.evidence.correlation for r in (nearest, closest_below) if r is not None
              and r.verdict is not Verdict.FAIL]
    return max(values, default=1.0)


def _affordable(rate: RateEvidence, settings: SearchSettings, remaining_s: float,
                saturation: float | None) -> int | None:
    """The requests to extend this rate by, if the budget affords them (None: it can't)."""
    extra = extra_requests(rate, settings)
    if extra is None:
        return None
    extra = max(extra, math.ceil(settings.min_step_s * rate.offered_rps))
    # One step collects at most max_step_s of requests; the next extension the rest.
    extra = min(extra, math.floor(settings.max_step_s * rate.offered_rps))
    seconds = warmup_for(settings, rate.offered_rps, saturation) + extra / rate.offered_rps
    return extra if seconds <= remaining_s else None


def _next(history: list[StepResult], settings: SearchSettings, remaining_s: float,
          saturation: float | None) -> tuple[float, Phase, int | None] | None:
    cap = settings.max_rps if settings.max_rps is not None else math.inf
    if not history:
        return min(settings.start_rps, cap), _first_phase(settings), _ramp_requests(settings)
    rates = pool_by_rate(history, settings.sla)
    by_rate = {r.offered_rps: r for r in rates}
    last = by_rate[history[-1].offered_rps]
    if settings.strategy == "linear":
        return _next_linear(last, settings, remaining_s, cap, saturation)

    last_pass, first_fail = bracket(rates)
    if first_fail is None:
        # Ramping. A last step leaning to fail is extended: it decides whether we are over.
        if last.verdict is Verdict.INCONCLUSIVE and _planning_share(last) > 1 - settings.quantile:
            extra = _affordable(last, settings, remaining_s, saturation)
            if extra is not None:
                return last.offered_rps, Phase.EXTEND, extra
        if last.offered_rps >= cap:
            if last.verdict is Verdict.INCONCLUSIVE:
                extra = _affordable(last, settings, remaining_s, saturation)
                if extra is not None:
                    return last.offered_rps, Phase.EXTEND, extra
            return None
        return (min(last.offered_rps * settings.growth, cap), Phase.RAMP,
                _ramp_requests(settings))

    lo = last_pass.offered_rps if last_pass else 0.0
    hi = first_fail.offered_rps
    open_rates = [r for r in rates if lo < r.offered_rps < hi
                  and r.verdict is Verdict.INCONCLUSIVE]
    affordable = []
    for rate in open_rates:
        extra = _affordable(rate, settings, remaining_s, saturation)
        if extra is None:
            if _caps_search(rate, settings):
                hi = min(hi, rate.offered_rps)  # on the threshold: the search stays below
        else:
            affordable.append((extra / rate.offered_rps, -rate.offered_rps, rate, extra))
    affordable = [a for a in affordable if a[2].offered_rps < hi]
    if affordable:
        _, _, rate, extra = min(affordable, key=lambda a: (a[0], a[1]))
        return rate.offered_rps, Phase.EXTEND, extra
    if last_pass is None:
        probes = sum(1 for s in history if s.phase == Phase.PROBE_DOWN)
        if probes >= MAX_PROBES_DOWN:
            return None
        return min(r.offered_rps for r in rates) / settings.growth, Phase.PROBE_DOWN, None
    if (hi - lo) / lo <= settings.precision:
        return None
    # The middle of the bracket, or, when the queue there would take longer to settle
    # than the budget has left, the highest rate below it that still fits.
    candidate = (lo + hi) / 2.0
    for _ in range(6):
        requests = math.ceil(SAMPLE_HEADROOM * samples_for_zero_exceedances(
            settings.quantile, settings.confidence) * _correlation_near(rates, candidate))
        if step_duration(candidate, settings, requests, saturation) <= remaining_s:
            return candidate, Phase.BISECT, requests
        candidate = (lo + candidate) / 2.0
        if (candidate - lo) / lo <= settings.precision:
            break
    return None


def _first_phase(settings: SearchSettings) -> Phase:
    return Phase.LINEAR if settings.strategy == "linear" else Phase.RAMP


def _ramp_requests(settings: SearchSettings) -> int:
    return RAMP_HEADROOM * samples_for_zero_exceedances(settings.quantile, settings.confidence)


def _next_linear(last: RateEvidence, settings: SearchSettings, remaining_s: float,
                 cap: float, saturation: float | None) -> tuple[float, Phase, int | None] | None:
    if last.verdict is Verdict.FAIL:
        return None
    if last.verdict is Verdict.INCONCLUSIVE:
        extra = _affordable(last, settings, remaining_s, saturation)
        return None if extra is None else (last.offered_rps, Phase.LINEAR, extra)
    rate = last.offered_rps + (settings.linear_step_rps or settings.start_rps)
    return (rate, Phase.LINEAR, None) if rate <= cap else None


# After a step whose requests the client abandoned (timeouts, or killed at the step's end),
# the endpoint still works through them: wait at most this long for it to catch up.
MAX_DRAIN_SECONDS = 30.0


def drain_seconds(abandoned: int, achieved_rps: float) -> float:
    """Pause before the next step so that it does not measure this one's backlog."""
    if abandoned <= 0:
        return 0.0
    return min(MAX_DRAIN_SECONDS, 1.0 + abandoned / max(achieved_rps, 1.0))


def budget_advice(history: list[StepResult], settings: SearchSettings,
                  used_s: float) -> str | None:
    """What budget would resolve the capacity, when this run's did not: None when the run
    found a pass and a bracket narrower than `UNRESOLVED_WIDTH`."""
    rates = pool_by_rate(history, settings.sla)
    saturation = saturation_estimate(history)
    last_pass, first_fail = bracket(rates)
    if last_pass is not None and (first_fail is None or (
            first_fail.offered_rps - last_pass.offered_rps) / last_pass.offered_rps
            <= UNRESOLVED_WIDTH):
        return None
    lo = last_pass.offered_rps if last_pass else 0.0
    hi = first_fail.offered_rps if first_fail else math.inf
    pending = [r for r in rates if lo < r.offered_rps < hi and r.verdict is Verdict.INCONCLUSIVE]
    seconds = 0.0
    for rate in pending:
        extra = extra_requests(rate, settings)
        if extra is not None:
            seconds = max(seconds, warmup_for(settings, rate.offered_rps, saturation)
                          + extra / rate.offered_rps)
    if not seconds:
        per_step = step_duration(lo or settings.start_rps, settings, None, saturation)
        seconds = 3 * per_step
    if not math.isfinite(seconds):
        seconds = 3 * settings.budget_s
    suggestion = math.ceil((used_s + seconds) / 10) * 10
    where = (f"between {lo:g} and {hi:g} rps" if last_pass and first_fail
             else "at the rates tried")
    return (f"the load budget ({settings.budget_s:g} s) could not resolve "
            f"p{settings.percentile:g} {where}: showing the SLA needs more requests than "
            f"it allowed; re-run with --max-test-seconds {suggestion:g} or more")
