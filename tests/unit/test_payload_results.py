"""What a run with a payload set records and says: latency by payload, the first step's
rejected requests, drift and validation only between runs that sent the same set."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.unit.test_history import add_run
from tuner.config import build_config
from tuner.errors import InputError
from tuner.measure.controller import Recorder, rejected_status, rejection_problem
from tuner.measure.payload_stats import MAX_ROWS_PER_PAYLOAD, payload_breakdown
from tuner.measure.payloads import Payload, PayloadSet, PayloadSourceKind
from tuner.report.baseline import payloads_problem
from tuner.report.history import scan
from tuner.report.render import drift_lines, payload_lines
from tuner.report.result import RunResult


def payload_set(*sizes: int) -> PayloadSet:
    members = tuple(Payload(f"p{i}.json", b"x" * size, "application/json")
                    for i, size in enumerate(sizes))
    return PayloadSet(members, "set/", PayloadSourceKind.DIRECTORY, len(members))


def samples_of(rows: list[tuple[int, float, bool, int]]) -> pd.DataFrame:
    """(step, latency ms, ok, payload) per request."""
    return pd.DataFrame({"step": [r[0] for r in rows], "intended_s": 0.0, "completed_s": 0.0,
                         "latency_ms": [r[1] for r in rows], "ok": [r[2] for r in rows],
                         "payload": [r[3] for r in rows]})


def test_the_breakdown_shows_each_payloads_latency_at_the_step_asked_for():
    rows = ([(1, 10.0, True, 0)] * 90 + [(1, 80.0, True, 1)] * 9 + [(1, 5000.0, False, 1)]
            + [(0, 999.0, True, 0)] * 50)  # another step: not counted
    table = payload_breakdown(samples_of(rows), 1, payload_set(10, 800), "why")
    small, big = table["rows"]
    assert table["grouping"] == "payload" and table["step"] == 1
    assert (small["label"], small["requests"], small["errors"], small["p90_ms"]) == (
        "p0.json", 90, 0, 10.0)
    # Errors are counted apart; the percentiles are the answered requests'.
    assert (big["requests"], big["errors"], big["p50_ms"], big["bytes_min"]) == (10, 1, 80.0,
                                                                                 800)
    assert small["share"] == 0.9 and big["share"] == 0.1
    assert payload_breakdown(samples_of(rows), 7, payload_set(10, 800), "why") is None


def test_a_large_set_is_grouped_by_body_size():
    sizes = list(range(100, 100 + 10 * 40, 10))  # 40 payloads, more than get a row each
    rows = [(0, float(size), True, i) for i, size in enumerate(sizes)]
    table = payload_breakdown(samples_of(rows), 0, payload_set(*sizes), "why")
    assert table["grouping"] == "size" and 1 < len(table["rows"]) <= MAX_ROWS_PER_PAYLOAD
    assert sum(r["requests"] for r in table["rows"]) == 40
    assert sum(r["payloads"] for r in table["rows"]) == 40
    # Bigger bodies took longer here: the buckets are in size order and show it.
    p50s = [r["p50_ms"] for r in table["rows"]]
    assert p50s == sorted(p50s)


class HTTPError(Exception):
    def __init__(self, status: int, text: str = "") -> None:
        super().__init__(text or f"HTTP {status}")
        self.status = status


class ClientError(Exception):
    """botocore's shape: `response` with the HTTP status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.mark.parametrize(("exception", "status"), [
    (None, None), (HTTPError(400), 400), (HTTPError(415), 415), (HTTPError(500), None),
    (HTTPError(429), None), (ClientError(424, "ModelError"), 424),
    # The signed path's error, as loadtests/fastpost.py words it with x-amzn-ErrorType.
    (HTTPError(400, "HTTP 400 ThrottlingException: Rate exceeded"), None),
    (ClientError(400, "An error occurred (ThrottlingException)"), None),
    (RuntimeError("timeout"), None)])
def test_only_a_bad_request_counts_as_rejected_never_throttling_or_overload(exception, status):
    assert rejected_status(exception) == status


def test_the_recorder_counts_rejections_by_payload():
    recorder = Recorder(clock=lambda: 1.0)
    recorder.on_request(context={"tuner": (0, 0.0, 0.1, 1)},
                        exception=HTTPError(400, "bad\n  body\r\n"))
    recorder.on_request(context={"tuner": (0, 0.0, 0.2, 1)}, exception=HTTPError(400))
    recorder.on_request(context={"tuner": (0, 0.0, 0.3, 0)}, exception=HTTPError(503))
    recorder.on_request(context={"tuner": (0, 0.0, 0.4, 0)})
    assert recorder.pop_rejected(0) == ({1: 2}, "bad body")  # one line, whatever the body
    assert recorder.pop_rejected(0) == ({}, None)


def test_the_first_step_ends_the_run_when_most_requests_are_rejected_naming_them():
    reports = [{"rejected": {"bad.json": 30, "worse.json": 40}, "rejected_example": "HTTP 400"},
               {"rejected": {"worse.json": 10}, "rejected_example": None}]
    problem = rejection_problem(0, reports, requests=100)
    assert problem.index("worse.json (50)") < problem.index("bad.json (30)")
    assert "80 of the first step's 100 requests" in problem and "HTTP 400" in problem
    assert "\n" not in problem and "fix those payloads" in problem
    assert rejection_problem(0, reports, requests=200) is None  # 40%: not most
    assert rejection_problem(1, reports, requests=100) is None  # only the first step


def set_run(reports, name, started, capacity, sha):
    run_dir = add_run(reports, name, started, capacity)
    record = json.loads((run_dir / "result.json").read_text())
    if sha is not None:
        record["payloads"] = {"set": {"sha256": sha}}
    (run_dir / "result.json").write_text(json.dumps(record))


def test_drift_compares_only_runs_that_sent_the_same_payload_set(tmp_path):
    set_run(tmp_path, "a", "2026-11-01T00:00:00+00:00", 200.0, None)  # before payload sets
    set_run(tmp_path, "b", "2026-11-02T00:00:00+00:00", 190.0, "1" * 64)
    set_run(tmp_path, "c", "2026-11-03T00:00:00+00:00", 60.0, "2" * 64)
    set_run(tmp_path, "d", "2026-11-04T00:00:00+00:00", 150.0, "1" * 64)
    by_dir = {e.run_dir: e for e in scan(tmp_path)}
    assert round(by_dir["ep/b"].drift, 3) == -0.05  # an old run is comparable with any
    assert by_dir["ep/c"].previous_run == "ep/a"  # not b: another set
    assert by_dir["ep/c"].other_payloads_run == "ep/b"
    assert by_dir["ep/d"].previous_run == "ep/b" and by_dir["ep/d"].drifted
    assert by_dir["ep/d"].other_payloads_run == "ep/c"
    lines = drift_lines({"change": None, "flagged": False, "limit": 0.1, "previous_run": None,
                         "previous_capacity_rps": None, "other_payloads_run": "ep/b"})
    assert lines == ["- Not compared with ep/b: it sent another payload set, so its capacity "
                     "is of other requests"]


def test_validate_refuses_a_candidate_that_would_send_another_set():
    base = RunResult.from_json({
        "endpoint": "ep", "variant": "AllTraffic", "region": "-",
        "sla": {"percentile": 90, "latency_ms": 100, "max_error_rate": 0.01,
                "confidence": 0.95}, "instances_under_test": 1,
        "payloads": {"set": {"sha256": "a" * 64, "source": "set/"}}})
    assert payloads_problem(base, "a" * 64) is None
    problem = payloads_problem(base, "b" * 64)
    assert "bbbbbbbbbbbb" in problem and "aaaaaaaaaaaa" in problem and "set/" in problem
    older = RunResult.from_json({**base.to_json(), "payloads": None})
    assert payloads_problem(older, "b" * 64) is None


@pytest.mark.parametrize(("flags", "message"), [
    ({"payload": "body.json", "payloads": "set/"}, "not both"),
    ({"payload_sample": 5}, "--payload-sample caps a --payloads set"),
    ({"payloads": "set/", "payload_sample": 0}, "--payload-sample"),
    ({"payloads": "set/", "seed": -1}, "--seed"),
])
def test_payload_flags_are_refused_in_one_line(tmp_path, flags, message):
    (tmp_path / "body.json").write_text("{}")
    flags = {k: str(tmp_path / v) if k in ("payload", "payloads") else v
             for k, v in flags.items()}
    if "payload" in flags:
        from pathlib import Path

        flags["payload"] = Path(flags["payload"])
    with pytest.raises(InputError) as error:
        build_config({}, {"endpoint": "ep", "sla_latency_ms": 100,
                          "reports_dir": tmp_path / "reports", **flags})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_report_describes_the_set_and_its_slow_members():
    described = payload_set(10, 800).describe()
    result = {"payloads": {"set": described, "breakdown": {
        "step": 3, "why": "the highest passing step, 50 rps offered", "grouping": "payload",
        "rows": [{"label": "p0.json", "payloads": 1, "bytes_min": 10, "bytes_max": 10,
                  "requests": 90, "share": 0.9, "errors": 0, "p50_ms": 10.0, "p90_ms": 12.0,
                  "p99_ms": 13.0},
                 {"label": "p1.json", "payloads": 1, "bytes_min": 800, "bytes_max": 800,
                  "requests": 10, "share": 0.1, "errors": 1, "p50_ms": 80.0, "p90_ms": 90.0,
                  "p99_ms": None}]}}}
    text = "\n".join(payload_lines(result))
    assert "2 payload(s) from `set/` (directory)" in text
    assert "| p1.json | 1 | 800 | 10 | 10.0% | 1 | 80.0 | 90.0 |" in text
    assert "step 3 (the highest passing step, 50 rps offered)" in text
    assert payload_lines({}) == []


def test_samples_name_payloads_the_set_has_and_old_samples_read_as_payload_0(tmp_path):
    from tuner.report.runfiles import read_samples

    path = tmp_path / "samples.csv"
    path.write_text("step,intended_s,completed_s,latency_ms,ok\n0,0.1,0.2,100.0,1\n")
    assert read_samples(path, {0})["payload"].tolist() == [0]  # written before payload sets
    path.write_text("step,intended_s,completed_s,latency_ms,ok,payload\n0,0.1,0.2,100.0,1,2\n")
    assert read_samples(path, {0}, payload_count=3)["payload"].tolist() == [2]
    with pytest.raises(InputError, match="names a payload the run's payload set does not"):
        read_samples(path, {0}, payload_count=2)
    # The run's payloads.jsonl removed: the samples still read (no breakdown is shown).
    assert read_samples(path, {0}, payload_count=None)["payload"].tolist() == [2]


def test_validate_asks_for_a_baseline_set_that_went_missing(tmp_path):
    from tuner.config import ValidateConfig
    from tuner.report.baseline import candidate_tune_config

    base = RunResult.from_json({
        "endpoint": "ep", "variant": "AllTraffic", "region": "-",
        "sla": {"percentile": 90, "latency_ms": 100, "max_error_rate": 0.01,
                "confidence": 0.95}, "instances_under_test": 1, "max_sustainable_rps": 50.0,
        "max_rps_per_instance": 50.0,
        "payloads": {"set": {"sha256": "a" * 64, "source": "s3://b/dc/", "kind": "data-capture"}}})
    with pytest.raises(InputError, match="is missing: restore it") as error:
        candidate_tune_config(ValidateConfig(baseline=tmp_path, url="http://127.0.0.1:9",
                                             reports_dir=tmp_path / "r"), base)
    assert "s3://b/dc/" in str(error.value) and "\n" not in str(error.value)


def test_a_toml_config_takes_the_payload_keys_and_flags_win(tmp_path):
    from tuner.config import load_toml

    (tmp_path / "set").mkdir()
    path = tmp_path / "tune.toml"
    path.write_text(f'endpoint = "ep"\nsla-latency-ms = 100\npayloads = "{tmp_path / "set"}"\n'
                    'payload-sample = 50\nseed = 7\n')
    config = build_config(load_toml(path), {"seed": 8, "reports_dir": tmp_path / "r"})
    assert (config.payloads, config.payload_sample, config.seed) == (
        str(tmp_path / "set"), 50, 8)
    path.write_text('endpoint = "ep"\nsla-latency-ms = 100\npayload-sample = 50\n')
    with pytest.raises(InputError, match="--payload-sample caps a --payloads set"):
        build_config(load_toml(path), {"reports_dir": tmp_path / "r"})
