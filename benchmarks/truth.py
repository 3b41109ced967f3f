"""The benchmark's yardstick: the true capacity of a server of known behaviour at an SLA.

An independent discrete-event simulation (it shares nothing with `tuner.measure.queueing` but the
`ServiceLaw` parser and sampler): requests arrive, take one of `slots` identical slots when
one is free or wait in a FIFO queue, and leave after their service time. Events are
explicit: an arrival either starts service (a slot was free: one more busy slot, its
departure scheduled) or joins the queue; a departure hands its slot to the head of the
queue or frees it.

The true capacity at an SLA "percentile q of latency <= X ms" is the highest mean arrival
rate whose stationary latency percentile meets it (the first share of requests, while the
queue fills up from empty, is left out). Under Poisson arrivals (many independent clients,
like production traffic) it is lower than under evenly spaced arrivals, and both are lower
than the saturation throughput `slots / mean service time`.

    .venv/bin/python benchmarks/truth.py lognormal:40:1.0 2 90 200
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tuner.measure.queueing import ServiceLaw  # noqa: E402

ARRIVALS = ("poisson", "uniform")


def sojourn_times_s(arrivals_s: list[float], services_s: list[float], slots: int) -> list[float]:
    """Time each request spends in the system (queueing + service), event by event.

    `arrivals_s` must be sorted. Two event sources: the next arrival (in order) and the
    earliest departure (a heap of busy slots' finish times). At a tie the departure goes
    first, so the arriving request finds the slot free.
    """
    count = len(arrivals_s)
    sojourn = [0.0] * count
    departures: list[float] = []
    waiting: deque[int] = deque()
    busy = 0
    index = 0
    push, pop = heapq.heappush, heapq.heappop
    next_arrival = arrivals_s[0] if count else math.inf
    while True:
        if departures and departures[0] <= next_arrival:
            # Departure event: the slot goes to the head of the queue, or becomes free.
            now = pop(departures)
            if waiting:
                head = waiting.popleft()
                service = services_s[head]
                sojourn[head] = now + service - arrivals_s[head]
                push(departures, now + service)
            else:
                busy -= 1
        elif index < count:
            # Arrival event: straight into a free slot, or to the back of the queue.
            service = services_s[index]
            if busy < slots:
                busy += 1
                sojourn[index] = service
                push(departures, next_arrival + service)
            else:
                waiting.append(index)
            index += 1
            next_arrival = arrivals_s[index] if index < count else math.inf
        else:
            return sojourn


class Experiment:
    """One stream of random numbers replayed at any arrival rate (common random numbers):
    arrival times at rate r are the unit-rate ones divided by r, and request i always has
    the same service time, so the latency percentile never decreases with the rate."""

    def __init__(self, law: ServiceLaw, slots: int, arrivals: str = "poisson",
                 requests: int = 100_000, seed: int = 11, warmup_share: float = 0.1) -> None:
        if arrivals not in ARRIVALS:
            raise ValueError(f"arrivals {arrivals!r}: use one of {', '.join(ARRIVALS)}")
        if slots < 1 or requests < 100 or not 0 <= warmup_share < 1:
            raise ValueError("need slots >= 1, requests >= 100 and a warm-up share in [0, 1)")
        rng = np.random.default_rng(seed)
        if arrivals == "poisson":
            unit = np.cumsum(rng.exponential(1.0, requests))
        else:
            unit = rng.uniform(0.0, 1.0) + np.arange(requests, dtype=float)
        self.unit_arrivals = unit
        self.services_s = law.sample_s(rng, requests).tolist()
        self.slots = slots
        self.skip = int(requests * warmup_share)

    def _stationary_s(self, rate_rps: float) -> np.ndarray:
        """Each request's time in system at a mean arrival rate, the filling share left out."""
        arrivals = (self.unit_arrivals / rate_rps).tolist()
        return np.asarray(sojourn_times_s(arrivals, self.services_s, self.slots)[self.skip:])

    def percentile_ms(self, rate_rps: float, percentile: float) -> float:
        """The stationary latency percentile at a mean arrival rate."""
        return float(np.percentile(self._stationary_s(rate_rps), percentile)) * 1000.0

    def slow_share(self, rate_rps: float, sla_ms: float) -> float:
        """The stationary share of requests slower than `sla_ms` at a mean arrival rate."""
        return float((self._stationary_s(rate_rps) * 1000.0 > sla_ms).mean())


def true_capacity(law: ServiceLaw, slots: int, percentile: float, sla_ms: float,
                  arrivals: str = "poisson", requests: int = 100_000, seed: int = 11,
                  tolerance: float = 0.002) -> float:
    """Highest mean arrival rate whose stationary latency percentile is <= `sla_ms`.

    Bisection between 0 and the saturation throughput, to `tolerance` of the bracket's top.
    0.0 when even a nearly idle server breaks the SLA.
    """
    experiment = Experiment(law, slots, arrivals, requests, seed)
    top = law.saturation_rps(slots)
    if experiment.percentile_ms(0.001 * top, percentile) > sla_ms:
        return 0.0
    meets, breaks = 0.001 * top, top
    while breaks - meets > tolerance * breaks:
        rate = (meets + breaks) / 2
        if experiment.percentile_ms(rate, percentile) <= sla_ms:
            meets = rate
        else:
            breaks = rate
    return meets


@dataclass(frozen=True)
class Truth:
    saturation_rps: float
    poisson_rps: float
    uniform_rps: float


def truths(law: ServiceLaw | str, slots: int, percentile: float, sla_ms: float,
           requests: int = 100_000, seed: int = 11) -> Truth:
    """Saturation throughput and the true capacity under Poisson and even arrivals."""
    law = ServiceLaw.parse(law) if isinstance(law, str) else law
    return Truth(law.saturation_rps(slots),
                 true_capacity(law, slots, percentile, sla_ms, "poisson", requests, seed),
                 true_capacity(law, slots, percentile, sla_ms, "uniform", requests, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("law", type=ServiceLaw.parse, help="e.g. lognormal:40:1.0")
    parser.add_argument("slots", type=int)
    parser.add_argument("percentile", type=float)
    parser.add_argument("sla_ms", type=float)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    truth = truths(args.law, args.slots, args.percentile, args.sla_ms, args.requests, args.seed)
    print(f"{args.law} x{args.slots} p{args.percentile:g}<={args.sla_ms:g} ms: saturation "
          f"{truth.saturation_rps:.1f} rps, Poisson {truth.poisson_rps:.1f}, "
          f"uniform {truth.uniform_rps:.1f}")


if __name__ == "__main__":
    main()
