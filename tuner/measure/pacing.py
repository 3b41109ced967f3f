"""The arrival pacer of one load lane: when each request is due, and how many a step owed.

Pure (no clock, no I/O), like vegeta's `Pacer`: the Locust lane (`loadtests/openloop.py`)
asks it for each next intended send time and, when a step ends, how many of the step's
arrivals it never sent. Counting those on the lane's own arrival sequence, rather than
against the expected count, keeps a Poisson step's ordinary randomness from looking like a
generator that fell behind.
"""

from __future__ import annotations

import random

__all__ = ["next_arrival", "unsent_arrivals"]


def next_arrival(intended_s: float, rate_rps: float, poisson: bool, rng: random.Random) -> float:
    """The intended send time after `intended_s`: exponential gaps (Poisson) or even ones."""
    return intended_s + (rng.expovariate(rate_rps) if poisson else 1.0 / rate_rps)


def unsent_arrivals(next_intended_s: float, end_s: float, rate_rps: float, poisson: bool,
                    rng: random.Random) -> int:
    """Arrivals of this step due before `end_s` that were never sent: the lane's own
    sequence, drawn on from the first arrival it did not send (`next_intended_s`)."""
    unsent = 0
    intended = next_intended_s
    while intended < end_s:
        unsent += 1
        intended = next_arrival(intended, rate_rps, poisson, rng)
    return unsent
