import pytest

from tuner.scaling.release_gate import judge


def test_equal_capacity_passes():
    verdict = judge(200.0, 200.0, max_regression=0.1)
    assert verdict.passed and verdict.change == 0


def test_regression_beyond_the_limit_fails_and_within_passes():
    assert not judge(200.0, 170.0, max_regression=0.1).passed
    assert judge(200.0, 185.0, max_regression=0.1).passed
    assert judge(200.0, 260.0, max_regression=0.1).passed  # faster is fine


def test_expected_peak_needs_enough_instances():
    verdict = judge(200.0, 200.0, 0.1, expected_peak_rps=900, max_capacity=4)
    assert not verdict.passed
    assert "raise --max-capacity to at least 5" in verdict.reasons[0]
    assert judge(200.0, 200.0, 0.1, expected_peak_rps=800, max_capacity=4).passed


@pytest.mark.parametrize("candidate", [100.0, 150.0])
def test_both_reasons_are_reported(candidate):
    verdict = judge(200.0, candidate, 0.1, expected_peak_rps=1000, max_capacity=2)
    assert len(verdict.reasons) == 2


def test_the_baseline_capacity_per_instance_and_the_peak_instances_come_from_the_run():
    """Pure gate logic, formerly in the Prefect glue (flows/tasks.py)."""
    from dataclasses import replace

    from tuner.measure.analysis import Sla
    from tuner.report.result import RunResult
    from tuner.scaling.release_gate import baseline_rps_per_instance, peak_max_capacity
    run = RunResult("ep", "AllTraffic", "us-east-1", Sla(90, 100, 0.01), 2,
                    max_sustainable_rps=300.0, capacity_ci=(240.0, 320.0),
                    scalable_target={"MaxCapacity": 6})
    assert baseline_rps_per_instance(run) == 150.0
    assert baseline_rps_per_instance(replace(run, max_sustainable_rps=None)) == 120.0
    assert peak_max_capacity(None, run) == 6 and peak_max_capacity(3, run) == 3
    assert peak_max_capacity(None, replace(run, scalable_target=None)) is None


def test_a_candidate_is_judged_per_instance_on_its_best_estimate_and_its_peak_on_its_pass():
    """Gate logic moved out of the Prefect glue (flows/tasks.py) into report.baseline."""
    from pathlib import Path

    from tuner.config import ValidateConfig
    from tuner.measure.analysis import CapacityEstimate, Sla
    from tuner.report.baseline import judge_candidate
    from tuner.report.result import RunResult

    baseline = RunResult("ep", "AllTraffic", "us-east-1", Sla(90, 100, 0.01), 1,
                         max_sustainable_rps=200.0, capacity_ci=(160.0, 240.0),
                         scalable_target={"MaxCapacity": 4})
    config = ValidateConfig(baseline=Path("b"), url="http://127.0.0.1:9", instances=2,
                            expected_peak_rps=700)
    assert judge_candidate(config, baseline, None, 2) is None  # nothing measured
    # 400 rps over 2 instances: equal per instance; the peak needs 700 / (360 / 2) = 3.9 of 4
    same = CapacityEstimate(400.0, 360.0, 480.0, "interpolated")
    assert judge_candidate(config, baseline, same, 2).passed
    # Shown only up to 300 rps (150 per instance): 4 instances serve 600 of the 700 rps peak
    shown_less = CapacityEstimate(400.0, 300.0, 480.0, "interpolated")
    verdict = judge_candidate(config, baseline, shown_less, 2)
    assert not verdict.passed and "--max-capacity" in verdict.reasons[0]
    # Half the baseline per instance: a regression
    assert not judge_candidate(config, baseline, CapacityEstimate(200.0, 180.0, 240.0, "x"),
                               2).passed


@pytest.mark.parametrize(("instances", "max_regression"), [(1, 0.1), (3, 0.1), (1, 0.3)])
def test_the_candidate_ramp_has_a_step_between_the_pass_line_and_the_baseline(
        tmp_path, instances, max_regression):
    """An equal candidate's ramp step exactly at the baseline's capacity is a coin flip (at
    saturation a queue of even arrivals drifts), and one just under the gate's pass line
    leaves the point on the line when the budget fits only the ramp: one step must fall
    between the pass line and the baseline, none within 2% of the baseline itself."""
    from tuner.config import ValidateConfig
    from tuner.measure.search import SearchSettings
    from tuner.report.baseline import candidate_tune_config
    from tuner.report.result import RunResult

    base = RunResult.from_json({
        "endpoint": "ep", "variant": "AllTraffic", "region": "-",
        "sla": {"percentile": 90, "latency_ms": 100, "max_error_rate": 0.01,
                "confidence": 0.95}, "instances_under_test": 1, "max_sustainable_rps": 200.0,
        "capacity_ci": [160.0, 240.0], "max_rps_per_instance": 200.0})
    config = candidate_tune_config(ValidateConfig(
        baseline=tmp_path, url="http://127.0.0.1:9", instances=instances,
        max_regression=max_regression, reports_dir=tmp_path / "r"), base)
    baseline_rps = 200.0 * instances
    shares = [config.start_rps * SearchSettings.growth ** k / baseline_rps for k in range(6)]
    assert any(1 - max_regression < share < 1 for share in shares), shares
    assert all(abs(share - 1) >= 0.02 for share in shares), shares
    # Two steps below the pass line: a candidate at half the baseline still shows a pass.
    assert sum(share < 0.5 for share in shares) >= 2, shares
