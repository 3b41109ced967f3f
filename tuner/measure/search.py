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
from typing import NamedTuple

from tuner.measure.analysis import (
    LEAN_CONFIDENCE,
    QueueShape,
    RateEvidence,
    Sla,
    StepResult,
    StepSpec,
    Verdict,
    bracket,
    lean,
    look_confidence,
    navigation_bracket,
    overloaded,
    point_estimate,
    pool_by_rate,
    queue_shape,
)
from tuner.measure.curve_fit import share_through_crossing
from tuner.measure.stats import (
    pass_chance,
    requests_for_chance,
    requests_to_show,
    samples_for_zero_exceedances,
)

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
    CONFIRM = "confirm"
    LINEAR = "linear"


class Choice(NamedTuple):
    """The next step: its rate, why, how many requests, and a warm-up when it differs from
    the settled-queue one (`warmup_for`)."""

    rate: float
    phase: Phase
    requests: int | None = None
    warmup_s: float | None = None


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

    @property
    def allowed_share(self) -> float:
        return self.sla.allowed_share  # exact at ties (`Sla.allowed_share`)


def warmup_for(settings: SearchSettings, rate: float = 0.0,
               shape: QueueShape | None = None) -> float:
    """A step's unmeasured start: the configured warm-up, longer for slow models (two SLA
    latencies, capped), and long enough for the queue to settle at this rate
    (`analysis.QueueShape.settle_time_s`)."""
    base = max(settings.warmup_s, min(WARMUP_CAP_S, 2 * settings.sla_latency_ms / 1000.0))
    return max(base, shape.settle_time_s(rate)) if shape is not None else base


def step_duration(rate: float, settings: SearchSettings, requests: int | None = None,
                  shape: QueueShape | None = None) -> float:
    """Warm-up, then long enough to collect `requests` (default: what a new rate needs)."""
    return warmup_for(settings, rate, shape) + measure_seconds(rate, settings, requests)


def measure_seconds(rate: float, settings: SearchSettings, requests: int | None = None,
                    longest_s: float | None = None) -> float:
    """The measured part of a step: `requests` (default: what a new rate needs) at `rate`,
    between the shortest step and `longest_s` (default the longest)."""
    requests = _base_requests(settings) if requests is None else requests
    longest_s = settings.max_step_s if longest_s is None else longest_s
    return min(max(requests / rate, settings.min_step_s), longest_s)


def out_of_budget(settings: SearchSettings, used_s: float) -> bool:
    """Too little load budget left for even the shortest step."""
    return settings.budget_s - used_s < warmup_for(settings) + settings.min_step_s


def next_step(history: list[StepResult], settings: SearchSettings,
              used_s: float) -> StepSpec | None:
    """The next step to run, or None when the search is done or out of budget."""
    if out_of_budget(settings, used_s):
        return None
    remaining = settings.budget_s - used_s
    shape = queue_shape(history, settings.sla)
    choice = _next(history, settings, remaining, shape)
    if choice is None:
        return None
    rate, phase, requests, warmup = choice
    if warmup is None:
        warmup = warmup_for(settings, rate, shape)
        if not math.isfinite(warmup):  # at or above saturation: nothing to settle
            warmup = warmup_for(settings)
    duration = warmup + measure_seconds(rate, settings, requests or None,
                                        RAMP_MAX_S if phase is Phase.RAMP else None)
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
    allowed = settings.allowed_share
    confidence = look_confidence(settings.confidence, evidence.looks + 1)
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


def _correlation_at(rates: list[RateEvidence], rate: float, shape: QueueShape) -> float:
    """Raw requests per independent one to plan a step at `rate` with: the queue model's
    once it has one, else what the nearest measured rates showed."""
    modelled = shape.correlation(rate)
    return modelled if modelled is not None else _correlation_near(rates, rate)


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
                shape: QueueShape, settled: bool = True) -> int | None:
    """The requests to extend this rate by, if the budget affords them and the rate has
    been looked at fewer than `MAX_LOOKS` times (None: it can't).

    `settled`: counting the warm-up that lets the queue settle at this rate, which is
    endless at or above the saturation seen (no pass there); a look that only has to
    show a fail is judged affordable on the bare warm-up (`next_step` then gives it the
    settled warm-up where that is finite, the bare one where it is not, and cuts the step
    at the budget)."""
    extra = extra_requests(rate, settings)
    if extra is None or rate.evidence.looks >= MAX_LOOKS:
        return None
    extra = max(extra, math.ceil(settings.min_step_s * rate.offered_rps))
    # One step collects at most max_step_s of requests; the next extension the rest.
    extra = min(extra, math.floor(settings.max_step_s * rate.offered_rps))
    warmup = warmup_for(settings, rate.offered_rps, shape if settled else None)
    seconds = warmup + extra / rate.offered_rps
    return extra if seconds <= remaining_s else None


def _next(history: list[StepResult], settings: SearchSettings, remaining_s: float,
          shape: QueueShape) -> Choice | None:
    cap = settings.max_rps if settings.max_rps is not None else math.inf
    if not history:
        return Choice(min(settings.start_rps, cap), _first_phase(settings),
                      _ramp_requests(settings))
    rates = pool_by_rate(history, settings.sla, shape)
    by_rate = {r.offered_rps: r for r in rates}
    last = by_rate[history[-1].offered_rps]
    if settings.strategy == "linear":
        return _next_linear(last, settings, remaining_s, cap, shape)

    last_pass, first_fail = bracket(rates)
    if first_fail is None:
        # Ramping. A last step leaning to fail is looked at once more, as briefly as a ramp
        # step: it decides whether we are over (at a low rate no budget would settle it).
        # Only a step that leans to fail or could not keep up is worth it: a share a
        # little over the SLA from a few dozen requests is noise where some requests are
        # slow at any load (a 1.5 s model re-looked at 4, 8 and 16 rps lost 37 s).
        if (last.verdict is Verdict.INCONCLUSIVE and last.evidence.looks == 1
                and last.evidence.slow_share > settings.allowed_share
                and (lean(last, settings.sla) is Verdict.FAIL or overloaded(history[-1]))):
            # (Before, whether it was depended on the noise in its answers per second:
            # at or above the saturation seen the settled warm-up is endless.)
            extra = _affordable(last, settings, remaining_s, shape, settled=False)
            if extra is not None:
                return Choice(last.offered_rps, Phase.EXTEND,
                              min(extra, math.floor(RAMP_MAX_S * last.offered_rps)))
        if last.offered_rps >= cap:
            if last.verdict is Verdict.INCONCLUSIVE:
                extra = _affordable(last, settings, remaining_s, shape)
                if extra is not None:
                    return Choice(last.offered_rps, Phase.EXTEND, extra)
            return None
        return Choice(min(last.offered_rps * _ramp_growth(history[-1], settings), cap),
                      Phase.RAMP, _ramp_requests(settings))

    return (_navigate(rates, last_pass, first_fail, history, settings, remaining_s, shape)
            or _confirm(history, rates, last_pass, first_fail, settings, remaining_s, shape)
            or _spend_the_rest(rates, last_pass, first_fail, settings, remaining_s, shape))


# A rate is looked at (measured and judged) at most this often: each look spends part of
# the error allowance (`extra_requests`), so the 21st look at one rate needed a confidence
# no budget reaches while a lower rate could still pass (a 3,540 s run never showed one).
MAX_LOOKS = 4
# How often navigation looks again at a rate it cannot place on either side of the SLA
# (never, near the saturation seen: NEAR_SATURATION_FRACTION).
MAX_LOOKS_UNKNOWN = 3
# Navigation stops while this share of the budget is left, for the confirmation.
CONFIRM_RESERVE = 0.35
# Navigation does not look again at a rate at or above this fraction of the saturation
# seen (`QueueShape.saturation_rps`: the most answers per second any step got through).
# Where a step was overloaded, a window's slow share there says more about how long the
# queue had to fill than about the capacity, and that figure, from a window of a few
# seconds, is noisy by some 5% (33-35 on a true 32): a 1.5 s model on 48 slots
# (saturation 32 rps, capacity 28.9) spent 11 s of its 150 on average looking again at
# 32 rps, in runs that ended without a pass. Where none was, the figure is about the
# highest rate's own, and the rule leaves the top 5% below it to bisection: not studied
# apart (the offline zoo's figures with the rule include such runs: README, nineteenth
# session).
NEAR_SATURATION_FRACTION = 0.95


def _spendable(remaining_s: float, settings: SearchSettings) -> float:
    """What navigation may spend of the budget left: a share of the whole budget stays
    for confirming a pass."""
    return remaining_s - CONFIRM_RESERVE * settings.budget_s


def _navigation_warmup(settings: SearchSettings, rate: float, shape: QueueShape,
                       remaining_s: float) -> float:
    """Finding where the capacity lies needs no settled queue (only a pass does): a
    quarter of the spendable budget at most, the bare warm-up at or above saturation."""
    full = warmup_for(settings, rate, shape)
    if not math.isfinite(full):
        return warmup_for(settings)
    spendable = _spendable(remaining_s, settings)
    return max(warmup_for(settings), min(full, spendable / 4))


def _look_again(rate: RateEvidence, rates: list[RateEvidence], settings: SearchSettings,
                remaining_s: float, shape: QueueShape, reserve: bool = True) -> Choice | None:
    """Another navigation step at a rate whose side of the SLA is still unknown: as many
    requests again as it has, up to a new rate's worth, within the spendable budget (all
    of it when nothing leans to pass: a confirmation would have nothing to confirm)."""
    offered = rate.offered_rps
    spendable = _spendable(remaining_s, settings) if reserve else remaining_s
    warmup = _navigation_warmup(settings, offered, shape, remaining_s)
    correlation = max(rate.evidence.correlation, shape.correlation(offered) or 1.0)
    # Navigation needs only the side the rate leans to (`analysis.lean`), not a pass: at a
    # p99 that is a third of the requests, and the rest of the budget can bisect.
    wanted = max(rate.evidence.requests,
                 math.ceil(_lean_requests(rate, settings) * correlation)
                 - rate.evidence.requests)
    longest = max(settings.min_step_s, (spendable - warmup) / 2)
    requests = min(wanted, math.floor(longest * offered))
    if warmup + max(settings.min_step_s, requests / offered) > spendable:
        return None
    return Choice(offered, Phase.EXTEND, requests, warmup)


def _lean_requests(rate: RateEvidence, settings: SearchSettings) -> int:
    """Effective requests that show which side of the SLA this rate's planning share lies
    on at the lean's confidence (at most what a new rate gets)."""
    share = _planning_share(rate)
    allowed = settings.allowed_share
    if share < allowed:
        needed = requests_to_show(share, settings.quantile, LEAN_CONFIDENCE)
    elif share > allowed:
        needed = requests_to_show(1 - share, allowed, LEAN_CONFIDENCE)
    else:
        needed = _base_requests(settings)
    return min(needed, _base_requests(settings))


def _navigate(rates: list[RateEvidence], last_pass: RateEvidence | None,
              first_fail: RateEvidence, history: list[StepResult],
              settings: SearchSettings, remaining_s: float,
              shape: QueueShape) -> Choice | None:
    """First, find where the capacity lies (the point estimate): bisect on which side of
    the SLA each rate's slow share leans (`analysis.navigation_bracket`), keeping a
    reserve of the budget for the confirmation; near saturation no affordable step can
    make a verdict significant, but the side it leans to still narrows the estimate. A
    rate that leans to neither side is looked at again only below
    `NEAR_SATURATION_FRACTION` of the saturation seen."""
    low, high = navigation_bracket(rates, settings.sla)
    saturation_rps = shape.saturation_rps or math.inf
    look_again_below_rps = NEAR_SATURATION_FRACTION * saturation_rps
    if low is None:
        if last_pass is not None:
            return None
        unknown = [r for r in rates
                   if r.offered_rps < min(first_fail.offered_rps, look_again_below_rps)
                   and lean(r, settings.sla) is Verdict.INCONCLUSIVE
                   and r.evidence.looks <= MAX_LOOKS_UNKNOWN]
        if unknown:
            # Below the failing load (and the saturation seen) nothing leans either way
            # yet: look again where the measured share is lowest among the highest rates
            # (the capacity is above it if anywhere), before probing lower.
            rate = max(unknown, key=lambda r: (r.evidence.slow_share <= settings.allowed_share,
                                               r.offered_rps))
            return _look_again(rate, rates, settings, remaining_s, shape, reserve=False)
        probes = sum(1 for s in history if s.phase == Phase.PROBE_DOWN)
        if probes >= MAX_PROBES_DOWN:
            return None
        # As long as a new rate's step, but no more than a quarter of what is left: at a
        # tenth of the capacity that could be the whole budget.
        rate = min(r.offered_rps for r in rates) / settings.growth
        seconds = max(settings.min_step_s, (remaining_s - warmup_for(settings)) / 4)
        return Choice(rate, Phase.PROBE_DOWN,
                      min(_base_requests(settings), math.floor(seconds * rate)))
    top = high.offered_rps if high is not None else first_fail.offered_rps
    # No rate at or above the saturation seen can be sustained: none is worth a look.
    top = min(top, saturation_rps)
    if (top - low.offered_rps) / low.offered_rps <= settings.precision:
        return None
    spendable = _spendable(remaining_s, settings)
    if (high is not None and lean(high, settings.sla) is Verdict.INCONCLUSIVE
            and high.offered_rps < look_again_below_rps
            and high.evidence.looks <= MAX_LOOKS_UNKNOWN):
        # Too little evidence to tell which side it is on: look longer before going below
        # (a rate still unknown after that sits on the threshold: the estimate's limit).
        choice = _look_again(high, rates, settings, remaining_s, shape)
        if choice is not None:
            return choice
    candidate = (low.offered_rps + top) / 2.0
    correlation = _correlation_at(rates, candidate, shape)
    warmup = _navigation_warmup(settings, candidate, shape, remaining_s)
    longest = max(settings.min_step_s, (spendable - warmup) / 2)
    requests = min(math.ceil(_base_requests(settings) * correlation),
                   math.floor(longest * candidate))
    if warmup + max(settings.min_step_s, requests / candidate) > spendable:
        return None
    return Choice(candidate, Phase.BISECT, requests, warmup)


# Rates below the navigated capacity a confirmation may try, as fractions of it.
CONFIRM_FRACTIONS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)
# A confirmation within this share of a rate measured already extends that rate.
SAME_RATE = 0.01
# A confirmation is sized to pass this often at the share expected there (sized to show
# the SLA at exactly that share, it passed about half the time) ...
CONFIRM_CHANCE = 0.8
# ... and is not tried when the budget leaves it less chance than this.
MIN_CONFIRM_CHANCE = 0.1


class Option(NamedTuple):
    """A confirmation the budget affords, and its chance to pass (`stats.pass_chance`)."""

    choice: Choice
    chance: float


def _confirm(history: list[StepResult], rates: list[RateEvidence],
             last_pass: RateEvidence | None, first_fail: RateEvidence,
             settings: SearchSettings, remaining_s: float, shape: QueueShape
             ) -> Choice | None:
    """Then spend what is left showing the SLA statistically as close below the navigated
    capacity as the budget affords: the target rests on the highest rate shown.

    Every affordable option (the navigation's highest rate leaning to pass looked at
    again, new rates at fractions of the point the report gives, `point_estimate`, rates
    measured already near them) gets
    its chance to pass at the share expected there; the one with the most rate times
    chance wins. (Taking the first affordable fraction sized to pass at exactly its
    expected share was a coin flip: a 1.5 s model and a low-rate p99 often ended without
    any pass while a lower rate would have passed almost surely. Fractions of the straight
    line's point, `best_estimate`, were too low where the share curve bends: a 1.5 s
    model's confirmation went to 0.6 of its capacity, or nowhere.)"""
    low, _ = navigation_bracket(rates, settings.sla)
    estimate = point_estimate(history, rates, settings.sla, shape=shape)
    if low is None or estimate is None:
        return None
    point, fitted = estimate
    floor = last_pass.offered_rps if last_pass is not None else 0.0
    if point <= floor * (1 + settings.precision):
        return None
    options = []
    if low.verdict is Verdict.INCONCLUSIVE and low.offered_rps > floor:
        options.append(_extension_option(low, settings, remaining_s, shape, Phase.EXTEND))
    # The share expected below the point: between the rates measured up to it and the
    # SLA's allowed share at the point itself, unless a rate was measured there (a rate
    # above the point that was fast by chance would promise passes above the capacity).
    allowed = settings.allowed_share
    known = [(r.offered_rps, *_share_estimate(r)) for r in rates
             if r.evidence.requests and r.offered_rps <= point]
    if not known or known[-1][0] < point:
        if fitted and known:
            known += _bend(known[-1], point, settings, shape)
        known.append((point, allowed, 0.0))
    for fraction in CONFIRM_FRACTIONS[1:]:
        rate = point * fraction
        if rate <= floor * (1 + settings.precision):
            break
        near = [r for r in rates if abs(r.offered_rps / rate - 1) <= SAME_RATE
                and r.verdict is Verdict.INCONCLUSIVE]
        if near:
            # A rate measured already (within 1%): add to its requests rather than start
            # a separate pool that shares none of them.
            options.append(_extension_option(near[0], settings, remaining_s, shape,
                                             Phase.CONFIRM))
            continue
        share, variance = _interpolate(known, rate)
        share = max(share, 0.5 / max(1, low.evidence.requests))
        options.append(_new_rate_option(rate, share, variance, rates, settings, remaining_s,
                                        shape))
    viable = [o for o in options if o is not None and o.chance >= MIN_CONFIRM_CHANCE]
    if not viable:
        return None
    if last_pass is None:
        # Nothing shown yet: a run without a pass has no answer at all. The highest rate
        # likely to pass, else the likeliest.
        likely = [o for o in viable if o.chance >= CONFIRM_CHANCE]
        if likely:
            return max(likely, key=lambda o: o.choice.rate).choice
        return max(viable, key=lambda o: o.chance).choice
    # Above a pass: what the basis is expected to gain.
    return max(viable, key=lambda o: o.chance * (o.choice.rate - floor)).choice


def _bend(last: tuple[float, float, float], point: float, settings: SearchSettings,
          shape: QueueShape) -> list[tuple[float, float, float]]:
    """The shares expected at the confirmation's rates between the last rate measured
    below a fitted point and the point: from the last measured share to the SLA's at the
    point, as the fitted model's curve rises between them
    (`curve_fit.share_through_crossing`), not along a straight line. Where the curve stays
    flat and then shoots up (a 1.5 s model: 7.7% slow at 80% of the capacity, 10% at it),
    the line expected 8.9% at 0.8 of the point and sent the confirmation further down.
    Only the model's shape counts, not its level (read from a few hundred low-load
    answers, it may sit above the measured share and promise nothing anywhere). Empty
    without the correlation model's sample (no step fell behind, though the point may be
    fitted: `analysis.fitted_estimate`), with a curve that does not rise between the two,
    or with the last share at or over the SLA's."""
    last_rate, last_share, last_variance = last
    allowed = settings.allowed_share
    if (shape.saturation_rps is None or not shape.service_sketch_ms
            or last_share >= allowed or last_rate >= point):
        return []

    def model(rate: float) -> float | None:
        return share_through_crossing(shape.service_sketch_ms, shape.saturation_rps,
                                      settings.sla_latency_ms, allowed, point, rate)

    at_last, at_point = model(last_rate), model(point)
    if at_last is None or at_point is None or at_point <= at_last:
        return []
    shares = []
    for fraction in CONFIRM_FRACTIONS[1:]:
        rate = point * fraction
        if rate <= last_rate:
            break
        share = model(rate)
        if share is None:
            continue
        weight = min(1.0, max(0.0, (share - at_last) / (at_point - at_last)))
        shares.append((rate, last_share + (allowed - last_share) * weight,
                       (1 - weight) ** 2 * last_variance))
    return sorted(shares)


def _share_estimate(rate: RateEvidence) -> tuple[float, float]:
    """A measured rate's slow share to plan with, and its variance over the effective
    requests it rests on."""
    share = _planning_share(rate)
    return share, share * (1 - share) / max(1.0, rate.evidence.effective_requests)


def _extension_option(rate: RateEvidence, settings: SearchSettings, remaining_s: float,
                      shape: QueueShape, phase: Phase) -> Option | None:
    """More requests at a rate measured already: at least what `_affordable` plans, more
    where that buys the confirmation's chance, within the budget and one step's length."""
    extra = _affordable(rate, settings, remaining_s, shape)
    if extra is None:
        return None
    evidence = rate.evidence
    share, variance = _share_estimate(rate)
    correlation = max(1.0, evidence.correlation)
    confidence = look_confidence(settings.confidence, evidence.looks + 1)
    warmup = warmup_for(settings, rate.offered_rps, shape)
    most_requests = math.floor(min(remaining_s - warmup, settings.max_step_s)
                               * rate.offered_rps)
    wanted = requests_for_chance(share, variance, settings.quantile, confidence,
                                 CONFIRM_CHANCE, evidence.effective_slow,
                                 evidence.effective_requests,
                                 most=max(1, math.ceil(most_requests / correlation)))
    # Where no count reaches CONFIRM_CHANCE, as many as the budget allows, as for a new
    # rate: the bare extension left a rate measured already behind a new rate beside it
    # that got the whole budget.
    extra = max(extra, _confirm_requests(wanted, correlation, most_requests))
    chance = pass_chance(share, variance, extra / correlation, settings.quantile, confidence,
                         evidence.effective_slow, evidence.effective_requests)
    return Option(Choice(rate.offered_rps, phase, extra), chance)


def _new_rate_option(rate: float, share: float, variance: float, rates: list[RateEvidence],
                     settings: SearchSettings, remaining_s: float,
                     shape: QueueShape) -> Option | None:
    """A confirmation at a rate not measured yet, sized for `CONFIRM_CHANCE` or as much
    as the budget and one step allow."""
    correlation = _planning_correlation(rates, rate, shape)
    if not math.isfinite(correlation):
        return None
    confidence = look_confidence(settings.confidence, 1)
    warmup = warmup_for(settings, rate, shape)
    longest_s = min(remaining_s - warmup, settings.max_step_s)
    if not math.isfinite(warmup) or longest_s < settings.min_step_s:
        return None
    most_requests = math.floor(longest_s * rate)
    wanted = requests_for_chance(share, variance, settings.quantile, confidence,
                                 CONFIRM_CHANCE,
                                 most=max(1, math.ceil(most_requests / correlation)))
    requests = _confirm_requests(wanted, correlation, most_requests)
    requests = max(requests, math.ceil(settings.min_step_s * rate))
    chance = pass_chance(share, variance, requests / correlation, settings.quantile,
                         confidence)
    return Option(Choice(rate, Phase.CONFIRM, requests), chance)


def _confirm_requests(wanted: int | None, correlation: float, most_requests: int) -> int:
    """A confirmation's raw requests: the independent ones `wanted` for CONFIRM_CHANCE
    (`stats.requests_for_chance`) times the correlation, within `most_requests`; all of
    them where no count reaches that chance (None), since more still raise it."""
    if wanted is None:
        return most_requests
    return min(most_requests, math.ceil(wanted * correlation))


def _planning_correlation(rates: list[RateEvidence], rate: float, shape: QueueShape) -> float:
    """Raw requests per independent one to size a confirmation with: the queue model's,
    or what the measured rates around it showed where that is more (the model planned 5
    where 17-37 showed near a 5%-slow server's knee), interpolated geometrically between
    the nearest below and above (the nearest alone, 122 at a hard knee's 180 rps, made
    every rate down to 108 look hopeless after a 20 s run's ramp)."""
    return max(_correlation_at(rates, rate, shape), _correlation_between(rates, rate))


def _correlation_between(rates: list[RateEvidence], rate: float) -> float:
    """The measured correlation at `rate`, geometrically between the nearest rates below
    and at or above it that did not fail (the nearest one where there is only one)."""
    measured = [r for r in rates if r.evidence.requests and r.verdict is not Verdict.FAIL]
    below = [r for r in measured if r.offered_rps < rate]
    above = [r for r in measured if r.offered_rps >= rate]
    low = max(below, key=lambda r: r.offered_rps) if below else None
    high = min(above, key=lambda r: r.offered_rps) if above else None
    if low is None or high is None:
        nearest = low or high
        return nearest.evidence.correlation if nearest is not None else 1.0
    if high.offered_rps == rate:
        return high.evidence.correlation
    weight = (rate - low.offered_rps) / (high.offered_rps - low.offered_rps)
    return math.exp((1 - weight) * math.log(max(1.0, low.evidence.correlation))
                    + weight * math.log(max(1.0, high.evidence.correlation)))


def _spend_the_rest(rates: list[RateEvidence], last_pass: RateEvidence | None,
                    first_fail: RateEvidence, settings: SearchSettings, remaining_s: float,
                    shape: QueueShape) -> Choice | None:
    """Budget left that no planned step fits: give all of it to the inconclusive rate
    above the last pass, within the SLA so far, that needs the fewest seconds more. The
    requests it needs are an estimate from a noisy share; more can only add evidence, and
    a run that stops with budget unspent under-measures for nothing."""
    floor = last_pass.offered_rps if last_pass is not None else 0.0
    allowed = settings.allowed_share
    options = []
    for rate in rates:
        if not (floor < rate.offered_rps < first_fail.offered_rps
                and rate.verdict is Verdict.INCONCLUSIVE
                and rate.evidence.slow_share < allowed
                and rate.evidence.looks < MAX_LOOKS):
            continue
        warmup = warmup_for(settings, rate.offered_rps, shape)
        extra = extra_requests(rate, settings)
        if extra is None or not math.isfinite(warmup):
            continue
        measured = min(remaining_s - warmup, settings.max_step_s)
        if measured >= settings.min_step_s:
            options.append((extra / rate.offered_rps, -rate.offered_rps, rate, measured))
    if not options:
        return None
    _, _, rate, measured = min(options, key=lambda option: option[:2])
    return Choice(rate.offered_rps, Phase.EXTEND, math.floor(measured * rate.offered_rps))


def _interpolate(points: list[tuple[float, float, float]], rate: float
                 ) -> tuple[float, float]:
    """The slow share at `rate` and its variance, linearly between the measured rates
    around it (points: rate, share, variance of the share)."""
    below = [p for p in points if p[0] <= rate]
    above = [p for p in points if p[0] > rate]
    if not below:
        return above[0][1], above[0][2]
    if not above:
        return below[-1][1], below[-1][2]
    (r1, v1, var1), (r2, v2, var2) = below[-1], above[0]
    weight = (rate - r1) / (r2 - r1)
    return (v1 + (v2 - v1) * weight,
            (1 - weight) ** 2 * var1 + weight ** 2 * var2)


def _first_phase(settings: SearchSettings) -> Phase:
    return Phase.LINEAR if settings.strategy == "linear" else Phase.RAMP


def _ramp_growth(step: StepResult, settings: SearchSettings) -> float:
    """The ramp's factor: squared after a step too slow to collect even half a ramp
    step's requests that showed nothing slow (a start far below the capacity: a 1.5 s
    model started at 1 rps would spend a third of its budget on empty ramp steps)."""
    if step.requests < _ramp_requests(settings) / 2 and step.slow_requests == 0:
        return settings.growth ** 2
    return settings.growth


def _ramp_requests(settings: SearchSettings) -> int:
    return RAMP_HEADROOM * samples_for_zero_exceedances(settings.quantile, settings.confidence)


def _next_linear(last: RateEvidence, settings: SearchSettings, remaining_s: float,
                 cap: float, shape: QueueShape) -> Choice | None:
    if last.verdict is Verdict.FAIL:
        return None
    if last.verdict is Verdict.INCONCLUSIVE:
        extra = _affordable(last, settings, remaining_s, shape)
        return None if extra is None else Choice(last.offered_rps, Phase.LINEAR, extra)
    rate = last.offered_rps + (settings.linear_step_rps or settings.start_rps)
    return Choice(rate, Phase.LINEAR) if rate <= cap else None


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
    """What budget a re-run needs at the least, when this run's did not resolve the
    capacity: None when the run found a pass within `UNRESOLVED_WIDTH` below its best
    estimate.

    The figure is this run's load plus what the inconclusive rate closest to a pass
    would need more (at the share and correlation it showed): a floor, not a promise. A
    re-run starts over, and its noise differs: in simulated re-runs at this figure, the
    1.5 s model and the low-rate p99 of the zoo resolved 0 of 9 and 1 of 9 (README); the
    message says so rather than promise what it cannot."""
    shape = queue_shape(history, settings.sla)
    rates = pool_by_rate(history, settings.sla, shape)
    last_pass, first_fail = bracket(rates)
    # Resolved: the point the report gives lies within UNRESOLVED_WIDTH above what was
    # shown (the first fail may be a far ramp step; the point is what the basis is judged
    # against). Before the thirteenth session the two-rate line's point, which the report
    # no longer gives wherever there is a fit.
    estimate = (point_estimate(history, rates, settings.sla,
                               last_pass.offered_rps if last_pass else 0.0, shape)
                if first_fail is not None else None)
    point = estimate[0] if estimate is not None else None
    upper = (first_fail.offered_rps if point is None else point) if first_fail else None
    if last_pass is not None and (upper is None or (
            upper - last_pass.offered_rps) / last_pass.offered_rps <= UNRESOLVED_WIDTH):
        return None
    lo = last_pass.offered_rps if last_pass else 0.0
    hi = first_fail.offered_rps if first_fail else math.inf
    pending = [r for r in rates if lo < r.offered_rps < hi and r.verdict is Verdict.INCONCLUSIVE]
    # The cheapest rate to show a pass at: the least load among those leaning to pass.
    options = []
    for rate in pending:
        if not rate.evidence.slow_share < settings.allowed_share:
            continue
        extra = extra_requests(rate, settings)
        warmup = warmup_for(settings, rate.offered_rps, shape)
        if extra is not None and math.isfinite(warmup):
            options.append(warmup + extra / rate.offered_rps)
    seconds = min(options, default=0.0)
    if not seconds:
        per_step = step_duration(lo or settings.start_rps, settings, None, shape)
        seconds = 3 * per_step
    if not math.isfinite(seconds):
        seconds = 3 * settings.budget_s
    suggestion = math.ceil((max(used_s, settings.budget_s) + seconds) / 10) * 10
    where = (f"between {lo:g} and {hi:g} rps" if last_pass and first_fail
             else "at the rates tried")
    return (f"the load budget ({settings.budget_s:g} s) could not resolve "
            f"p{settings.percentile:g} {where}: showing the SLA needs more requests than "
            f"it allowed; a re-run needs --max-test-seconds {suggestion:g} at the very least "
            "(this run's load and what the rate closest to a pass lacks), near a tight SLA "
            "often several times that")

