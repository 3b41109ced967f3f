import json

from tuner.report.history import scan, update_index


def add_run(reports, name, started, capacity, endpoint="ep", latency=100):
    run_dir = reports / endpoint / name
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text(json.dumps({
        "endpoint": endpoint, "variant": "AllTraffic", "started_at": started,
        "sla": {"percentile": 90, "latency_ms": latency, "max_error_rate": 0.01},
        "max_sustainable_rps": capacity, "capacity_ci": [capacity * 0.98, capacity * 1.02],
        "target_invocations_per_instance": capacity * 0.98 * 30, "applied": True,
        "error": None}))
    return run_dir


def test_index_lists_every_run_with_links(tmp_path):
    add_run(tmp_path, "20261101T000000Z", "2026-11-01T00:00:00+00:00", 200.0)
    add_run(tmp_path, "20261108T000000Z", "2026-11-08T00:00:00+00:00", 205.0)
    entries = update_index(tmp_path)
    assert [e.run_dir for e in entries] == ["ep/20261101T000000Z", "ep/20261108T000000Z"]
    index = json.loads((tmp_path / "index.json").read_text())
    assert {"endpoint", "variant", "time", "capacity_rps", "capacity_ci", "target",
            "applied", "sla", "drift"} <= set(index[0])
    page = (tmp_path / "index.html").read_text()
    assert 'href="ep/20261101T000000Z/report.html"' in page
    assert 'href="ep/20261108T000000Z/report.html"' in page
    assert page.count("data:image/png;base64,") == 1  # one trend plot per endpoint


def test_drift_is_flagged_beyond_ten_percent_of_the_same_series(tmp_path):
    add_run(tmp_path, "a", "2026-11-01T00:00:00+00:00", 200.0)
    add_run(tmp_path, "b", "2026-11-08T00:00:00+00:00", 190.0)   # -5%
    add_run(tmp_path, "c", "2026-11-15T00:00:00+00:00", 150.0)   # -21% from b
    add_run(tmp_path, "d", "2026-11-16T00:00:00+00:00", 100.0, latency=50)  # other SLA
    by_dir = {e.run_dir: e for e in scan(tmp_path)}
    assert not by_dir["ep/b"].drifted
    assert by_dir["ep/c"].drifted and round(by_dir["ep/c"].drift, 3) == -0.211
    assert by_dir["ep/d"].drift is None  # nothing comparable before it


def test_half_written_results_are_skipped(tmp_path):
    add_run(tmp_path, "a", "2026-11-01T00:00:00+00:00", 200.0)
    broken = tmp_path / "ep" / "b"
    broken.mkdir()
    (broken / "result.json").write_text("{not json")
    assert [e.run_dir for e in scan(tmp_path)] == ["ep/a"]


def test_a_run_about_to_be_reported_gets_its_drift_from_one_read(tmp_path):
    from tuner.report.history import entries_with_run
    from tuner.report.result import RunResult

    add_run(tmp_path, "a", "2026-11-01T00:00:00+00:00", 200.0)
    run_dir = tmp_path / "ep" / "b"  # not on disk yet: its result is still in memory
    result = RunResult.from_json({
        "endpoint": "ep", "variant": "AllTraffic", "started_at": "2026-11-08T00:00:00",
        "sla": {"percentile": 90, "latency_ms": 100, "max_error_rate": 0.01},
        "max_sustainable_rps": 150.0, "capacity_ci": [148.0, 152.0]})
    entries, drift = entries_with_run(tmp_path, run_dir, result)
    assert [e.run_dir for e in entries] == ["ep/a", "ep/b"]
    assert drift == {"change": -0.25, "flagged": True, "limit": 0.1, "previous_run": "ep/a",
                     "previous_capacity_rps": 200.0}
