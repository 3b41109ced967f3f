"""`tuner simulate` on a run directory: reads the run, writes simulation.json and the report."""

import pytest

from tests.unit.test_simulate import BASIS
from tuner.simulate.sweep import headroom


def test_simulate_run_reports_the_headroom_of_the_recommendation(tmp_path):
    import json
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from tests.unit.test_report import sample_result
    from tuner.report.render import write_report
    from tuner.simulate.command import SimulationOptions, recommendation_text, simulate_run

    result = replace(sample_result(), capacity_ci=(BASIS, 200.0))  # one instance under test
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_report(run_dir, result)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    csv = tmp_path / "flat.csv"
    csv.write_text("timestamp,invocations\n" + "".join(
        f"{(start + timedelta(minutes=m)).isoformat()},12000\n" for m in range(180)))
    record = simulate_run(run_dir, SimulationOptions(traffic=str(csv), max_capacity=20))
    summary = record["summary"]
    assert {"instance_hours", "violation_minutes", "peak_instances", "scaling_actions",
            "recommended_target", "cost"} <= set(summary)
    assert summary["recommended_target"] == pytest.approx(6_142.5)
    assert summary["headroom"] == pytest.approx(0.35)
    assert summary["target_headroom"] == pytest.approx(headroom(summary["target"], BASIS),
                                                       abs=1e-4)
    assert record["recommended"]["peak_load_share"] == pytest.approx(6_000 / 60 / BASIS,
                                                                     abs=1e-4)
    assert record["capacity_basis_rps_per_instance"] == pytest.approx(BASIS)
    assert all("headroom" in row and "admissible" in row for row in record["sweep"])
    assert json.loads((run_dir / "simulation.json").read_text())["summary"] == summary
    text = recommendation_text(record)
    assert text.startswith("6142.5 (cheapest with <= 0 min over SLA") and "35.0%" in text
