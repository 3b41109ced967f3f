"""Service-time laws and a discrete-event FIFO queue: how realistic endpoints behave.

Pure (numpy only). One model serves three purposes:
- the bundled model server draws each request's service time from a `ServiceLaw`;
- the simulation tests drive the whole search against a `VirtualEndpoint` (c slots in front
  of a FIFO queue, state carried across steps), thousands of runs in seconds;
- `capacity_at_sla` computes, by long simulation under Poisson (or even) arrivals, the
  highest mean arrival rate at which a latency percentile meets an SLA: the definition of
  capacity the tool measures.

A law is written `kind:params` on the command line:
`constant:20` (every request 20 ms), `exponential:25` (mean 25 ms),
`lognormal:40:1.0` (mean 40 ms, log-space sigma 1.0: a long tail),
`bimodal:20:0.05:400` (20 ms, but 5% of requests take 400 ms at any load).

A payload mix: when a request's service time is proportional to its row count (the bundled
model server's `--per-row`), a test sending several payloads at random sees the law scaled
by a random row count R. `@rows=R:WEIGHT,...` after a law says so (`ServiceLaw.scales`):
`constant:10@rows=1:0.8,8:0.2` is 10 ms for 80% of requests and 80 ms for 20%, so its
saturation throughput is `slots * 1000 / (10 ms * E[R])` and `capacity_at_sla` gives the
mix's true capacity, lower than the smallest payload's alone. `rows_in_body` counts a
payload's rows exactly as the server does, so a benchmark builds the mix from its payloads.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "LAW_KINDS",
    "ServiceLaw",
    "VirtualEndpoint",
    "arrival_times",
    "capacity_at_sla",
    "fifo_sojourn_s",
    "latency_percentile_ms",
    "rows_in_body",
]

LAW_KINDS = ("constant", "exponential", "lognormal", "bimodal")
# Between a law and its payload mix: `constant:10@rows=1:0.8,8:0.2`.
_MIX_MARK = "@rows="


@dataclass(frozen=True)
class ServiceLaw:
    """How long one request occupies a slot, independent of load.

    `scales` ((row count, weight) pairs; empty: every request is one row) multiplies each
    drawn time by a row count drawn independently with probability weight / sum(weights):
    the service times a server with per-row cost sees under a random payload mix.
    """

    kind: str
    mean_ms: float  # constant/exponential/lognormal: the mean; bimodal: the fast mode
    sigma: float = 0.0  # lognormal: sigma of log(service time)
    slow_share: float = 0.0  # bimodal: share of slow requests
    slow_ms: float = 0.0  # bimodal: the slow mode
    scales: tuple[tuple[float, float], ...] = ()  # (row count, weight) pairs; () means 1

    def __post_init__(self) -> None:
        if self.kind not in LAW_KINDS:
            raise ValueError(f"unknown service-time law {self.kind!r}: use one of "
                             + ", ".join(LAW_KINDS))
        if not (math.isfinite(self.mean_ms) and self.mean_ms > 0):
            raise ValueError(f"service time {self.mean_ms} ms must be a positive number")
        if self.kind == "lognormal" and not (math.isfinite(self.sigma) and 0 < self.sigma <= 3):
            raise ValueError(f"lognormal sigma {self.sigma} must be in (0, 3]")
        if self.kind == "bimodal" and not (0 < self.slow_share < 1 and math.isfinite(
                self.slow_ms) and self.slow_ms > 0):
            raise ValueError("bimodal needs a slow share in (0, 1) and a positive slow time")
        # Tuples of floats whatever the caller passed (lists stay hashable, str stays exact).
        scales = tuple((float(rows), float(weight)) for rows, weight in self.scales)
        for rows, weight in scales:
            if not (math.isfinite(rows) and rows > 0 and math.isfinite(weight) and weight > 0):
                raise ValueError(f"payload mix entry {rows:g}:{weight:g} needs a positive "
                                 "row count and a positive weight")
        object.__setattr__(self, "scales", scales)

    @classmethod
    def parse(cls, text: str) -> ServiceLaw:
        """`constant:20`, `exponential:25`, `lognormal:40:1.0`, `bimodal:20:0.05:400`;
        any of them scaled by a payload mix: `constant:10@rows=1:0.8,8:0.2`."""
        base, mark, mix = text.strip().partition(_MIX_MARK)
        if mark:
            return replace(cls.parse(base), scales=_parse_mix(text, mix))
        if "@" in base:
            raise ValueError(f"service-time law {text!r}: write a payload mix as "
                             f"LAW{_MIX_MARK}ROWS:WEIGHT,ROWS:WEIGHT")
        kind, *raw = base.split(":")
        arity = {"constant": 1, "exponential": 1, "lognormal": 2, "bimodal": 3}
        if kind not in arity:
            raise ValueError(f"unknown service-time law {text!r}: use constant:MS, "
                             "exponential:MS, lognormal:MS:SIGMA or bimodal:MS:SHARE:SLOW_MS")
        if len(raw) != arity[kind]:
            raise ValueError(f"service-time law {text!r} takes {arity[kind]} number(s) "
                             f"after '{kind}:'")
        try:
            values = [float(v) for v in raw]
        except ValueError:
            raise ValueError(
                f"service-time law {text!r} has a value that is not a number") from None
        if kind == "lognormal":
            return cls(kind, values[0], sigma=values[1])
        if kind == "bimodal":
            return cls(kind, values[0], slow_share=values[1], slow_ms=values[2])
        return cls(kind, values[0])

    def __str__(self) -> str:
        mix = (_MIX_MARK + ",".join(f"{rows:g}:{weight:g}" for rows, weight in self.scales)
               if self.scales else "")
        if self.kind == "lognormal":
            return f"lognormal:{self.mean_ms:g}:{self.sigma:g}{mix}"
        if self.kind == "bimodal":
            return f"bimodal:{self.mean_ms:g}:{self.slow_share:g}:{self.slow_ms:g}{mix}"
        return f"{self.kind}:{self.mean_ms:g}{mix}"

    @property
    def unscaled(self) -> ServiceLaw:
        """The law of one row: what a per-row server is started with for this mix."""
        return replace(self, scales=()) if self.scales else self

    @property
    def mean_scale(self) -> float:
        """E[R], the mean row count of the payload mix (1.0 without one)."""
        if not self.scales:
            return 1.0
        total = sum(weight for _, weight in self.scales)
        return sum(rows * weight for rows, weight in self.scales) / total

    @property
    def average_ms(self) -> float:
        """The mean service time (what one slot's throughput depends on): the law's mean
        times E[R], as the row count is drawn independently of the law's time."""
        if self.kind == "bimodal":
            one_row_ms = (1 - self.slow_share) * self.mean_ms + self.slow_share * self.slow_ms
        else:
            one_row_ms = self.mean_ms
        return one_row_ms * self.mean_scale

    def saturation_rps(self, slots: int) -> float:
        """Throughput of `slots` busy slots: no arrival rate above it can be sustained."""
        return slots * 1000.0 / self.average_ms

    def sample_s(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` service times in seconds.

        With a payload mix, the row counts are drawn from `rng` after the law's times, so
        the law's draws are those of the unscaled law with the same generator state.
        """
        times_s = self._sample_one_row_s(rng, size)
        if not self.scales:
            return times_s
        rows = np.array([rows for rows, _ in self.scales])
        weights = np.array([weight for _, weight in self.scales])
        return times_s * rng.choice(rows, size, p=weights / weights.sum())

    def _sample_one_row_s(self, rng: np.random.Generator, size: int) -> np.ndarray:
        mean_s = self.mean_ms / 1000.0
        if self.kind == "constant":
            return np.full(size, mean_s)
        if self.kind == "exponential":
            return rng.exponential(mean_s, size)
        if self.kind == "lognormal":
            mu = math.log(mean_s) - self.sigma ** 2 / 2
            return rng.lognormal(mu, self.sigma, size)
        slow = rng.random(size) < self.slow_share
        return np.where(slow, self.slow_ms / 1000.0, mean_s)


def _parse_mix(text: str, mix: str) -> tuple[tuple[float, float], ...]:
    """`1:0.8,8:0.2` -> ((1.0, 0.8), (8.0, 0.2)); `text` is the whole law, for errors."""
    pairs = []
    for entry in mix.split(","):
        rows, colon, weight = entry.partition(":")
        try:
            if not colon:
                raise ValueError
            pairs.append((float(rows), float(weight)))
        except ValueError:
            raise ValueError(f"service-time law {text!r}: the payload mix after "
                             f"'{_MIX_MARK}' must be ROWS:WEIGHT pairs separated by commas, "
                             f"not {entry!r}") from None
    return tuple(pairs)


# Control characters that no CSV or other text payload holds (tab, CR and LF excepted).
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def rows_in_body(body: bytes, content_type: str = "") -> int:
    """The rows (records) of an invocation body, at least 1: what a per-row server's
    service time is proportional to.

    - `text/csv` (by the content type): its non-empty lines (a quoted field spanning lines
      counts once per line);
    - JSON: `len(instances)` for an object with a list "instances" (SageMaker's common
      request shape), `len(body)` for a top-level list, else 1;
    - other UTF-8 text without control characters (CSV or JSON Lines sent under another
      content type): its non-empty lines;
    - anything else (images, protobuf, ...): 1.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "text/csv":
        return _non_empty_lines(body.decode("utf-8", errors="replace"))
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError)
        pass
    else:
        if isinstance(document, dict) and isinstance(document.get("instances"), list):
            return max(1, len(document["instances"]))
        if isinstance(document, list):
            return max(1, len(document))
        return 1
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return 1
    return 1 if _BINARY.search(text) else _non_empty_lines(text)


def _non_empty_lines(text: str) -> int:
    return max(1, sum(1 for line in text.split("\n") if line.strip()))


def arrival_times(rate_rps: float, duration_s: float, rng: np.random.Generator,
                  arrivals: str = "poisson") -> np.ndarray:
    """Intended send times in [0, duration_s): a Poisson process or evenly spaced (random
    phase)."""
    if rate_rps <= 0 or duration_s <= 0:
        return np.empty(0)
    if arrivals == "uniform":
        start = rng.uniform(0, 1.0 / rate_rps)
        return np.arange(start, duration_s, 1.0 / rate_rps)
    expected = rate_rps * duration_s
    count = int(expected + 6 * math.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate_rps, count))
    while times[-1] < duration_s:  # vanishingly rare: extend
        more = times[-1] + np.cumsum(rng.exponential(1.0 / rate_rps, count))
        times = np.concatenate([times, more])
    return times[times < duration_s]


def fifo_sojourn_s(arrivals_s: np.ndarray, service_s: np.ndarray, slots: int,
                   free_at: list[float] | None = None) -> np.ndarray:
    """Time in system of each request: FIFO queue in front of `slots` identical slots.

    `free_at` (a heap of the times each slot frees up) carries a queue's state from one
    call to the next; it is updated in place.
    """
    heap = free_at if free_at is not None else [0.0] * slots
    if free_at is None:
        heapq.heapify(heap)
    finish = np.empty(len(arrivals_s))
    earliest = heap[0]
    for i, (arrival, service) in enumerate(zip(arrivals_s.tolist(), service_s.tolist(),
                                               strict=True)):
        # The request takes the slot that frees first, at once or when it frees.
        done = (arrival if arrival > earliest else earliest) + service
        heapq.heapreplace(heap, done)
        earliest = heap[0]
        finish[i] = done
    return finish - arrivals_s


def latency_percentile_ms(rate_rps: float, law: ServiceLaw, slots: int, percentile: float,
                          requests: int = 100_000, seed: int = 1,
                          arrivals: str = "poisson") -> float:
    """The stationary latency percentile at a mean arrival rate, by simulation (the first
    10% of requests, the queue filling up from empty, are left out)."""
    rng = np.random.default_rng(seed)
    duration = requests / rate_rps
    times = arrival_times(rate_rps, duration, rng, arrivals)
    service = law.sample_s(rng, len(times))
    sojourn = fifo_sojourn_s(times, service, slots)
    kept = sojourn[len(sojourn) // 10:]
    return float(np.percentile(kept, percentile)) * 1000.0


def capacity_at_sla(law: ServiceLaw, slots: int, percentile: float, sla_ms: float,
                    arrivals: str = "poisson", requests: int = 100_000, seed: int = 1,
                    tolerance: float = 0.002) -> float:
    """Highest mean arrival rate whose stationary latency percentile is within the SLA.

    Bisection on the rate with the same random numbers at every rate (common random
    numbers keep the percentile monotone in the rate). 0.0 when even an idle endpoint's
    service time breaks the SLA.
    """
    high = law.saturation_rps(slots)
    low = 0.0
    if latency_percentile_ms(high * 0.01, law, slots, percentile, requests // 10 + 1000,
                             seed, arrivals) > sla_ms:
        return 0.0
    while (high - low) > tolerance * high:
        middle = (low + high) / 2
        if latency_percentile_ms(middle, law, slots, percentile, requests, seed,
                                 arrivals) <= sla_ms:
            low = middle
        else:
            high = middle
    return low


class VirtualEndpoint:
    """A simulated endpoint for offline runs of the whole search: `slots` slots behind a
    FIFO queue whose backlog carries from one step to the next, answering each request
    after its queueing plus service time (a timeout when that exceeds `timeout_s`)."""

    def __init__(self, law: ServiceLaw, slots: int, seed: int = 0,
                 arrivals: str = "poisson", timeout_s: float = 10.0) -> None:
        self.law = law
        self.slots = slots
        self.arrivals = arrivals
        self.timeout_s = timeout_s
        self.rng = np.random.default_rng(seed)
        self.clock_s = 0.0
        self.free_at = [0.0] * slots

    def run_step(self, rate_rps: float, duration_s: float,
                 pause_s: float = 0.0) -> dict[str, np.ndarray]:
        """One constant-rate step after `pause_s` idle seconds: samples as Locust lanes
        report them (times relative to the step's start)."""
        self.clock_s += pause_s
        intended = arrival_times(rate_rps, duration_s, self.rng, self.arrivals)
        service = self.law.sample_s(self.rng, len(intended))
        start = self.clock_s
        relative_free = [t - start for t in self.free_at]
        heapq.heapify(relative_free)
        sojourn = fifo_sojourn_s(intended, service, self.slots, relative_free)
        self.free_at = [t + start for t in relative_free]
        self.clock_s += duration_s
        ok = sojourn <= self.timeout_s
        latency_s = np.minimum(sojourn, self.timeout_s)
        return {"intended_s": intended, "completed_s": intended + latency_s,
                "latency_ms": latency_s * 1000.0, "ok": ok}

    def backlog_s(self) -> float:
        """How long until every slot is free again (the queue's remaining work)."""
        return max(0.0, max(self.free_at) - self.clock_s)
