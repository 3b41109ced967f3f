import pytest

from tuner.validate import judge


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
