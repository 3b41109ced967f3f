"""`tuner apply RUN_DIR` and `tuner export RUN_DIR`: a past run's recommendation, read back
and applied without re-testing (measure before, apply at release).

The run's record is read through `RunResult` after the checks applying needs
(`runfiles.ApplyRecord`: a recommendation for exactly that endpoint and variant); the
apply itself is `scaling.apply.safe_apply`, and what it did is written beside the run
(`apply-<UTC stamp>.json`) and in the reports directory's audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tuner.errors import InputError
from tuner.inputs import show
from tuner.report.result import RunResult
from tuner.report.runfiles import ApplyRecord, checked, read_result
from tuner.scaling import aws
from tuner.scaling.apply import ApplyOptions, ApplyOutcome, rerun_command, safe_apply

__all__ = ["apply_run", "load_run"]


def load_run(run_dir: Path) -> RunResult:
    """A run directory's result.json, checked to hold a recommendation to apply."""
    result = read_result(run_dir)
    if not result.get("policy") or not result.get("scalable_target"):
        error = result.get("error")
        raise InputError(f"{run_dir} holds no recommendation to apply "
                         f"({show(error, 200) if error else 'no policy in result.json'})")
    label = str(Path(run_dir) / "result.json")
    return RunResult.from_json(checked(ApplyRecord, result, label), label)


def apply_run(run_dir: Path, options: ApplyOptions,
              say: Callable[[str], None] = lambda line: None) -> ApplyOutcome:
    """Apply a past run's recommendation without re-testing (measure before, apply at release)."""
    result = load_run(run_dir)
    # load_run's checks (ApplyRecord):
    assert result.scalable_target is not None and result.policy is not None
    assert result.finished_at is not None
    region = result.region
    aws.describe_variant(aws.client("sagemaker", region), result.endpoint, result.variant)
    recommended_at = datetime.fromisoformat(result.finished_at)
    outcome = safe_apply(region=region, target=result.scalable_target,
                         policy=result.policy, recommended_at=recommended_at,
                         options=options, audit_path=Path(run_dir).parent / "audit.jsonl",
                         say=say, rerun=rerun_command(run_dir, options))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    record = {"status": outcome.status, "end_state": outcome.end_state,
              "error": outcome.error,
              "plan": outcome.plan.to_dict() if outcome.plan else None,
              "plan_text": outcome.plan.lines() if outcome.plan else [],
              "after": outcome.after.to_dict() if outcome.after else None}
    (Path(run_dir) / f"apply-{stamp}.json").write_text(json.dumps(record, indent=2,
                                                                  default=str))
    return outcome
