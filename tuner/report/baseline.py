"""A past run as `tuner validate`'s baseline: read back, checked to hold a measured
capacity, the candidate's measurement configured from it (the baseline's SLA and arrival
process, never applied), and the candidate judged against it (`scaling.release_gate`).
"""

from __future__ import annotations

from pathlib import Path

from tuner.config import TuneConfig, ValidateConfig, check_tune_config
from tuner.errors import InputError
from tuner.inputs import show
from tuner.measure.analysis import CapacityEstimate
from tuner.measure.loadtest import config_payload_set
from tuner.measure.payloads import PAYLOADS_FILE, PayloadSet
from tuner.measure.search import SearchSettings
from tuner.report.result import RunResult
from tuner.report.runfiles import BaselineRecord, checked, read_result
from tuner.scaling.release_gate import (
    ValidationVerdict,
    baseline_rps_per_instance,
    judge,
    peak_max_capacity,
)

__all__ = ["candidate_start_share", "candidate_tune_config", "judge_candidate", "read_baseline"]

# Where an equal candidate's ramp step lands at most, as a share of the baseline's capacity
# (`candidate_start_share`).
CANDIDATE_STEP_CEILING = 0.95


def read_baseline(run_dir: Path) -> RunResult:
    """A baseline run's result.json, checked to hold a measured capacity."""
    result = read_result(run_dir, "--baseline")
    if not result.get("capacity_ci"):
        error = result.get("error")
        raise InputError(f"--baseline {run_dir} has no measured capacity "
                         f"({show(error, 200) if error else 'no capacity_ci'})")
    label = f"--baseline {Path(run_dir) / 'result.json'}"
    return RunResult.from_json(checked(BaselineRecord, result, label), label)


def candidate_tune_config(config: ValidateConfig, baseline: RunResult) -> TuneConfig:
    """Measure the candidate with exactly the baseline's SLA; never apply anything.

    Inputs that depend on the baseline are checked here, before anything is measured.
    """
    if (config.expected_peak_rps is not None
            and peak_max_capacity(config.max_capacity, baseline) is None):
        raise InputError("--expected-peak-rps needs --max-capacity (the baseline has none)")
    sla = baseline.sla
    per_instance = baseline_rps_per_instance(baseline)
    instances = config.instances or 1
    payloads = config.payloads
    baseline_set = Path(config.baseline) / "locust" / PAYLOADS_FILE
    recorded = (baseline.payloads or {}).get("set") or {}
    if config.payload is None and payloads is None:
        # Like with like: by default the candidate gets exactly the baseline's requests.
        if baseline_set.is_file():
            payloads = str(baseline_set)
        elif recorded and recorded.get("kind") != "built-in":
            raise InputError(f"the baseline sent a payload set ({recorded.get('source')}, "
                             f"sha256 {str(recorded.get('sha256'))[:12]}) but {baseline_set} "
                             "is missing: restore it, or give --payloads/--payload with the "
                             "same requests")
    return check_tune_config(TuneConfig(
        endpoint=config.endpoint or baseline.endpoint, variant=config.variant,
        region=config.region, url=config.url,
        instances=config.instances if config.url else None, payload=config.payload,
        payloads=payloads, payload_sample=config.payload_sample, seed=config.seed,
        content_type=config.content_type, sla_percentile=sla.percentile,
        sla_latency_ms=sla.latency_ms, max_error_rate=sla.max_error_rate,
        confidence=sla.confidence, dry_run=True,
        # The same arrival process as the baseline: capacities under different ones differ.
        arrivals=baseline.search.get("arrivals", "poisson"),
        max_test_seconds=config.max_test_seconds, processes=config.processes,
        start_rps=max(1.0, round(per_instance * instances
                                 * candidate_start_share(config.max_regression), 1)),
        reports_dir=config.reports_dir))


def candidate_start_share(max_regression: float,
                          growth: float = SearchSettings.growth) -> float:
    """The candidate's first rate as a share of the baseline's capacity: its ramp of
    doublings then puts a step halfway between the gate's pass line (1 - max_regression)
    and the baseline's capacity (at most `CANDIDATE_STEP_CEILING` of it), another clearly
    above, and two below (a candidate at half the baseline still passes one).

    From a quarter, a step landed exactly on the baseline's capacity, where an equal
    candidate's step is a coin flip; from 0.22 (a step at 0.88) an equal candidate whose
    budget fitted only the ramp was judged at about 0.9, on the pass line itself."""
    step = min(1.0 - max_regression / 2.0, CANDIDATE_STEP_CEILING)
    return step / growth**2


def payloads_problem(baseline: RunResult, candidate_sha256: str) -> str | None:
    """Why the candidate's requests cannot be compared with the baseline's (None: the same
    payload set, or a baseline recorded before payload sets)."""
    recorded = (baseline.payloads or {}).get("set") or {}
    sha256 = recorded.get("sha256")
    if sha256 is None or sha256 == candidate_sha256:
        return None
    return (f"the candidate would send another payload set (sha256 {candidate_sha256[:12]}) "
            f"than the baseline measured (sha256 {sha256[:12]}, from {recorded.get('source')}):"
            " capacities of different requests are not comparable; drop --payload/--payloads "
            "to send the baseline's own set")


def candidate_requests(config: ValidateConfig,
                       baseline: RunResult) -> tuple[TuneConfig, PayloadSet]:
    """The candidate's measurement configured from the baseline, and the payload set it
    sends, read once; InputError (one line) when that set is not the baseline's."""
    tune_config = candidate_tune_config(config, baseline)
    payload_set = config_payload_set(tune_config)
    problem = payloads_problem(baseline, payload_set.sha256())
    if problem:
        raise InputError(problem)
    return tune_config, payload_set


def judge_candidate(config: ValidateConfig, baseline: RunResult,
                    capacity: CapacityEstimate | None, instances: int) -> ValidationVerdict | None:
    """The release gate's verdict on the candidate's measured capacity (None: nothing was
    measured). Best estimates compare like with like (two lower ends would fail equal
    candidates whenever one interval came out wider); the peak must be served by what was
    shown (the candidate's last pass)."""
    if capacity is None:
        return None
    return judge(baseline_rps_per_instance(baseline), capacity.max_sustainable_rps / instances,
                 config.max_regression, config.expected_peak_rps,
                 peak_max_capacity(config.max_capacity, baseline),
                 candidate_shown_rps_per_instance=capacity.last_pass_rps / instances)
