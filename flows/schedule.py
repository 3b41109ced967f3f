"""Scheduled tuning: what a cron-served tune run is configured with.

A schedule runs unattended, so it only proposes (dry run) unless its config file says
`apply = true` explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuner.config import TuneConfig, build_config, normalise_keys
from tuner.errors import InputError


def validate_cron(cron: str, timezone: str = "UTC") -> None:
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError:
        raise InputError(f"--cron {cron!r} (timezone {timezone}) is not a valid cron schedule, "
                         'e.g. "0 3 * * 1" for Mondays at 03:00') from None


def scheduled_config(raw: dict[str, Any], source: Path) -> TuneConfig:
    """The tune config for a schedule: `apply = true` in the file is the only way to write."""
    raw = dict(raw)
    apply = raw.pop("apply", False)
    if not isinstance(apply, bool):
        raise InputError(f"--config {source}: apply must be true or false")
    if "dry_run" in raw or "dry-run" in raw:
        raise InputError(f"--config {source}: scheduled runs use `apply = true|false`, not "
                         "dry_run")
    values = normalise_keys(raw, f"--config {source}")
    return build_config({**values, "dry_run": not apply}, {})


def deployment(config: TuneConfig, cron: str, name: str, timezone: str = "UTC"):
    """The tune flow as a deployment on a cron schedule, with the config as its parameter."""
    from prefect.client.schemas.schedules import CronSchedule

    from flows.tune import tune_endpoint

    return tune_endpoint.to_deployment(
        name=name, schedules=[CronSchedule(cron=cron, timezone=timezone)],
        parameters={"config": config.model_dump(mode="json")},
        description=f"endpoint-tuner: {config.endpoint}/{config.variant}")
