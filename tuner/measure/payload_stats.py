"""Which requests are slow: latency per payload (or per size bucket) at one step.

A capacity measured with a payload mix is the mix's; the reader still needs to see which
members of the mix cost the most, to tell whether the set is representative and which
requests would break the SLA first. `payload_breakdown` groups one step's requests by the
payload each sent (the `payload` column of `samples.csv`): one row per payload for a small
set, one row per body-size bucket (quantiles of size) for a large one.

Percentiles are over answered requests; errors and timeouts are counted apart (a row whose
every request failed has no percentile). Pure: NumPy and pandas only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tuner.measure.payloads import PayloadSet

__all__ = ["MAX_ROWS_PER_PAYLOAD", "PERCENTILES", "payload_breakdown"]

# Up to this many payloads get a row each; more are grouped into as many size buckets.
MAX_ROWS_PER_PAYLOAD = 12
PERCENTILES = (50.0, 90.0, 99.0)


def _size_buckets(sizes: Sequence[int], buckets: int) -> list[tuple[int, int]]:
    """Contiguous (low, high) byte ranges holding about equal numbers of payloads."""
    edges = sorted(set(int(v) for v in np.quantile(np.asarray(sizes), np.linspace(0, 1,
                                                                            buckets + 1))))
    if len(edges) == 1:
        return [(edges[0], edges[0])]
    ranges = [(edges[i] + (1 if i else 0), edges[i + 1]) for i in range(len(edges) - 1)]
    return [r for r in ranges if r[0] <= r[1]]


def _row(label: str, sizes: tuple[int, int], latencies_ms: np.ndarray, ok: np.ndarray,
         total: int, payload_count: int) -> dict[str, Any]:
    answered = latencies_ms[ok]
    row: dict[str, Any] = {
        "label": label, "payloads": payload_count, "bytes_min": sizes[0],
        "bytes_max": sizes[1], "requests": int(len(ok)),
        "share": round(len(ok) / total, 4) if total else 0.0,
        "errors": int((~ok).sum()),
    }
    for q in PERCENTILES:
        key = f"p{q:g}_ms"
        row[key] = round(float(np.percentile(answered, q)), 2) if len(answered) else None
    return row


def payload_breakdown(samples: pd.DataFrame, step_index: int, payload_set: PayloadSet,
                      why: str) -> dict[str, Any] | None:
    """Latency by payload (or size bucket) over the requests of step `step_index`; None
    when that step has no requests. `why` says which step this is (for the report)."""
    step = samples[samples["step"] == step_index]
    if step.empty:
        return None
    total = len(step)
    index = step["payload"].to_numpy(dtype=int)
    latency = step["latency_ms"].to_numpy(dtype=float)
    ok = step["ok"].to_numpy(dtype=bool)
    members = payload_set.payloads
    rows = []
    if len(members) <= MAX_ROWS_PER_PAYLOAD:
        grouping = "payload"
        for i, payload in enumerate(members):
            mask = index == i
            if mask.any():
                size = len(payload.body)
                rows.append(_row(payload.name, (size, size), latency[mask], ok[mask], total, 1))
    else:
        grouping = "size"
        sizes = np.array([len(p.body) for p in members])
        request_sizes = sizes[index]
        for low, high in _size_buckets(sizes.tolist(), MAX_ROWS_PER_PAYLOAD // 2):
            mask = (request_sizes >= low) & (request_sizes <= high)
            if mask.any():
                in_bucket = int(((sizes >= low) & (sizes <= high)).sum())
                rows.append(_row(f"{low:,}-{high:,} bytes", (low, high), latency[mask],
                                 ok[mask], total, in_bucket))
    return {"step": int(step_index), "why": why, "grouping": grouping, "rows": rows}
