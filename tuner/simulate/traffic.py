"""Per-minute invocation traffic: from a CSV file or from CloudWatch.

Fill rule, stated once: CloudWatch publishes no `Invocations` datapoint for a minute without
invocations, so a missing minute inside the range counts as 0 invocations. A CSV with more
than half its minutes missing is refused as too gappy to simulate (a file that sparse is
more likely broken than idle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuner.errors import InputError
from tuner.inputs import read_csv_table, show

MAX_MISSING_SHARE = 0.5
CLOUDWATCH_MAX_DAYS = 15  # one-minute datapoints are kept for 15 days
MAX_MINUTES = 366 * 1440  # a year of minutes: beyond it a series is not one to replay
MAX_INVOCATIONS_PER_MINUTE = 1e9  # 16 million requests/s: no endpoint serves more


@dataclass(frozen=True)
class Traffic:
    start: datetime
    invocations: np.ndarray  # one value per minute from start
    filled_minutes: int
    source: str

    @property
    def minutes(self) -> int:
        return int(self.invocations.size)

    def describe(self) -> str:
        return (f"{self.minutes} minutes from {self.start:%Y-%m-%d %H:%M} UTC ({self.source}); "
                f"{self.filled_minutes} missing minutes counted as 0 invocations; peak "
                f"{self.invocations.max():.0f}/min, mean {self.invocations.mean():.0f}/min")


def regularise(timestamps: pd.Series, values: pd.Series, source: str,
               max_missing_share: float | None = MAX_MISSING_SHARE) -> Traffic:
    """Sum into whole UTC minutes, fill missing minutes with 0, refuse gappy or bad data.

    CloudWatch data passes `max_missing_share=None`: there a missing minute *is* a minute
    without invocations, however many there are.
    """
    if len(values) == 0:
        raise InputError(f"{source}: no traffic datapoints")
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        row = int(numbers.isna().to_numpy().nonzero()[0][0])
        raise InputError(f"{source}: invocations value {show(values.iloc[row])} is not a number "
                         f"(row {row + 2})")
    if (numbers < 0).any():
        raise InputError(f"{source}: negative invocation counts")
    if not (numbers <= MAX_INVOCATIONS_PER_MINUTE).all():  # also catches infinity
        raise InputError(f"{source}: an invocation count is above "
                         f"{MAX_INVOCATIONS_PER_MINUTE:g} per minute or not finite")
    times = pd.to_datetime(timestamps, utc=True, errors="coerce")
    if times.isna().any():
        row = int(times.isna().to_numpy().nonzero()[0][0])
        raise InputError(f"{source}: timestamp {show(timestamps.iloc[row])} is not a date/time "
                         f"(row {row + 2}); use ISO 8601, e.g. 2026-11-01T00:00:00Z")
    minutes = times.dt.floor("min")
    # Python datetimes: times centuries apart overflow pandas' own nanosecond timedeltas.
    span = (minutes.max().to_pydatetime() - minutes.min().to_pydatetime()) / timedelta(
        minutes=1) + 1
    if span > MAX_MINUTES:
        raise InputError(f"{source}: the series spans {span:,.0f} minutes, more than a year: "
                         "give a shorter range")
    per_minute = pd.Series(numbers.to_numpy(), index=minutes).groupby(level=0).sum()
    full = pd.date_range(per_minute.index.min(), per_minute.index.max(), freq="min")
    missing = len(full) - len(per_minute)
    if max_missing_share is not None and len(full) > 1 and missing / len(full) > max_missing_share:
        raise InputError(f"{source}: {missing} of {len(full)} minutes have no datapoint; too "
                         "gappy to simulate (give a denser series or a shorter range)")
    series = per_minute.reindex(full, fill_value=0.0)
    return Traffic(full[0].to_pydatetime(), series.to_numpy(dtype=float), missing, source)


def read_csv(path: Path) -> Traffic:
    """A CSV with columns `timestamp,invocations`, one row per minute (gaps allowed)."""
    frame = read_csv_table(path, f"--traffic {path}")
    if not {"timestamp", "invocations"} <= set(frame.columns):
        raise InputError(f"--traffic {path}: needs columns timestamp,invocations (has "
                         f"{','.join(map(str, frame.columns))})")
    return regularise(frame["timestamp"], frame["invocations"], f"--traffic {path}")


def fetch_cloudwatch(cloudwatch: Any, endpoint: str, variant: str, days: float,
                     now: datetime | None = None) -> Traffic:
    """`AWS/SageMaker` `Invocations` (Sum, 1 minute) of the variant, paginated."""
    if not 0 < days <= CLOUDWATCH_MAX_DAYS:
        raise InputError(f"--days {days} must be in (0, {CLOUDWATCH_MAX_DAYS}]: CloudWatch "
                         "keeps one-minute datapoints for 15 days")
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    query = [{"Id": "invocations", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "Invocations",
                   "Dimensions": [{"Name": "EndpointName", "Value": endpoint},
                                  {"Name": "VariantName", "Value": variant}]},
        "Period": 60, "Stat": "Sum"}}]
    timestamps: list[datetime] = []
    values: list[float] = []
    paginator = cloudwatch.get_paginator("get_metric_data")
    for page in paginator.paginate(MetricDataQueries=query, StartTime=start, EndTime=end,
                                   ScanBy="TimestampAscending"):
        for series in page["MetricDataResults"]:
            timestamps.extend(series["Timestamps"])
            values.extend(series["Values"])
    source = f"CloudWatch AWS/SageMaker Invocations {endpoint}/{variant}, last {days:g} days"
    if not values:
        raise InputError(f"{source}: no datapoints (has the endpoint served traffic in this "
                         "region?)")
    return regularise(pd.Series(timestamps), pd.Series(values), source, max_missing_share=None)
