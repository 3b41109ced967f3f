"""The service-law sketch a queue model replays: quantiles, merging, slots."""

from __future__ import annotations

import numpy as np
import pytest

from tuner.measure.slow_correlation import (
    MIN_SKETCH_SAMPLES,
    SKETCH_PROBABILITIES,
    latency_sketch,
    merge_sketches,
    slots_for,
)


def test_a_sketch_needs_enough_answers_and_keeps_their_quantiles():
    assert latency_sketch(np.arange(MIN_SKETCH_SAMPLES - 1, dtype=float)) == ()
    values = np.random.default_rng(0).lognormal(3.0, 1.0, 5000)
    sketch = latency_sketch(values)
    assert len(sketch) == len(SKETCH_PROBABILITIES)
    assert sketch == tuple(sorted(sketch))
    assert sketch[SKETCH_PROBABILITIES.index(0.995)] == pytest.approx(
        np.quantile(values, 0.995), abs=1e-3)


def test_merged_sketches_are_the_pooled_answers_sketch():
    rng = np.random.default_rng(1)
    fast, mixed = rng.exponential(20.0, 3000), np.where(rng.random(1000) < 0.2, 400.0, 20.0)
    merged = np.array(merge_sketches([(latency_sketch(fast), 3000),
                                      (latency_sketch(mixed), 1000)]))
    pooled = np.array(latency_sketch(np.concatenate([fast, mixed])))
    body = (np.array(SKETCH_PROBABILITIES) >= 0.05) & (np.array(SKETCH_PROBABILITIES) <= 0.9)
    assert np.allclose(merged[body], pooled[body], rtol=0.1)
    # The tail holds the 400 ms requests in the right share (5% of the pool), not the
    # share of sketch points (the sketch is denser in the tail).
    share_slow = np.interp(100.0, merged, SKETCH_PROBABILITIES)
    assert 1 - share_slow == pytest.approx(0.05, abs=0.01)
    assert merge_sketches([]) == ()


def test_slots_follow_littles_law_from_the_saturation_seen():
    sketch = latency_sketch(np.full(100, 1500.0))
    assert slots_for(32.0, sketch) == 48
    assert slots_for(0.1, sketch) == 1
    assert slots_for(1e6, sketch) == 512
