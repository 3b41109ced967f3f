"""Issue G, item 4: no input leaves an endpoint or a disk worse than found.

Every flag, TOML key, traffic CSV and run-directory file is either accepted within its
documented range or refused with one line (InputError, exit 2) before anything reaches AWS
or the disk. Property-based (hypothesis) over the pure readers and validators, with many
examples; a few CLI-level checks through typer's CliRunner (no Prefect server is started:
input errors come before any flow).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import tempfile
from pathlib import Path

import botocore
import botocore.session
import pytest
import typer
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuner.cli import app
from tuner.config import TUNE_LIMITS, ValidateConfig, build_config, load_toml
from tuner.errors import InputError
from tuner.inputs import (
    MAX_PAYLOAD_BYTES,
    REGION,
    SAGEMAKER_NAME,
    region_problem,
    sagemaker_name_problem,
)
from tuner.report.past_run import load_run
from tuner.report.regenerate import read_raw_data, regenerate_report, run_config
from tuner.report.render import render_html, render_markdown, steps_frame
from tuner.report.runfiles import RUN_FILE, ReportRecord, RunRecord, checked, read_record
from tuner.scaling import aws
from tuner.scaling.iac import FORMATS, render
from tuner.simulate.command import SimulationOptions, scaling_model
from tuner.simulate.sweep import curve_from_result
from tuner.simulate.traffic import MAX_MINUTES, read_csv

FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
FEW = settings(FAST, max_examples=20)
RID = "endpoint/cli-ep/variant/AllTraffic"
BASE = {"endpoint": "ep", "sla_latency_ms": 100, "url": "http://127.0.0.1:9"}


def one_line(error: BaseException | str) -> bool:
    text = str(error)
    return bool(text) and "\n" not in text and "\r" not in text


# --- the patterns are AWS's own ------------------------------------------------------------

def test_name_pattern_and_length_are_botocores():
    model = botocore.session.get_session().get_service_model("sagemaker")
    for shape in ("EndpointName", "VariantName"):
        meta = model.shape_for(shape).metadata
        assert meta["pattern"] == SAGEMAKER_NAME.pattern
        assert meta["max"] == 63


def test_region_pattern_admits_every_region_botocore_knows():
    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    regions = [r for p in data["partitions"] for r in p["regions"] if not r.endswith("global")]
    assert len(regions) > 30
    assert all(region_problem(r) is None for r in regions), [
        r for r in regions if region_problem(r)]


def test_payload_limit_is_the_runtime_apis_body_limit():
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    body = model.operation_model("InvokeEndpoint").input_shape.members["Body"]
    assert body.metadata["max"] == MAX_PAYLOAD_BYTES == 6 * 1024 * 1024


HOSTILE_NAMES = ["../../tmp/x", "..", ".", "a/b", "ep\n", "-ep", "ep-", "a" * 64, "",
                 " ep", "ep\x00", "é", "ep.1", "ep_1", "/abs"]


@FAST
@given(st.one_of(st.text(max_size=70), st.sampled_from(HOSTILE_NAMES),
                 st.from_regex(SAGEMAKER_NAME, fullmatch=True)))
def test_a_name_passes_exactly_when_aws_would_and_is_one_path_component(name):
    accepted = sagemaker_name_problem(name, "--endpoint") is None
    assert accepted == (len(name) <= 63 and re.fullmatch(
        "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name) is not None)
    if accepted:
        assert Path(name).name == name and name not in (".", "..") and "/" not in name
        assert (Path("/r") / name).parent == Path("/r")
    else:
        assert one_line(sagemaker_name_problem(name, "--endpoint"))


@FAST
@given(st.one_of(st.text(max_size=30), st.from_regex(REGION, fullmatch=True)))
def test_a_region_passes_only_in_aws_shape(region):
    if region_problem(region) is None:
        assert re.fullmatch(r"[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}", region)
        assert "/" not in region and "." not in region


# --- flags and TOML ------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 0, -1, 1e309, 10**30]),
    st.integers(min_value=-10**25, max_value=10**25), st.booleans(),
    st.text(max_size=6), st.none())
NAMES = st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(max_size=20),
                  st.sampled_from(["ep", "AllTraffic", "us-east-1"]))


def assert_in_range(config) -> None:
    for key, (limit, _) in TUNE_LIMITS.items():
        value = getattr(config, key)
        assert value is None or limit.admits(value), (key, value)
    assert sagemaker_name_problem(config.endpoint, "e") is None
    assert sagemaker_name_problem(config.variant, "v") is None
    assert config.region is None or region_problem(config.region) is None


@FAST
@given(st.dictionaries(st.sampled_from(sorted(TUNE_LIMITS)), NUMBERS, max_size=6),
       st.dictionaries(st.sampled_from(["endpoint", "variant", "region"]), NAMES, max_size=3))
def test_every_tune_number_is_finite_and_in_range_or_refused_in_one_line(numbers, names):
    try:
        config = build_config({}, {**BASE, **numbers, **names})
    except InputError as error:
        assert one_line(error)
        return
    assert_in_range(config)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


@FAST
@given(st.dictionaries(
    st.one_of(st.sampled_from(sorted(TUNE_LIMITS) + ["endpoint", "variant", "region",
                                                     "reports-dir", "sla-latency-ms"]),
              st.from_regex(r"[a-z][a-z_-]{0,12}", fullmatch=True)),
    st.one_of(NUMBERS.filter(lambda v: v is not None), NAMES), max_size=8),
    st.binary(max_size=40))
def test_toml_config_is_valid_and_in_range_or_refused_in_one_line(table, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tune.toml"
        lines = [f"{key} = {toml_value(value)}" for key, value in table.items()]
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
        for content in (None, garbage):
            if content is not None:
                path.write_bytes(content)
            try:
                config = build_config(load_toml(path), {"url": BASE["url"]} | (
                    {} if "endpoint" in table else {"endpoint": "ep"}) | (
                    {} if "sla-latency-ms" in table else {"sla_latency_ms": 100}))
            except InputError as error:
                assert one_line(error)
                continue
            assert_in_range(config)
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["tune.toml"]


def test_a_body_above_the_runtime_api_limit_is_refused(tmp_path):
    body = tmp_path / "body.bin"
    with body.open("wb") as file:
        file.truncate(MAX_PAYLOAD_BYTES)
    assert build_config({}, {**BASE, "payload": body}).payload == body
    with body.open("ab") as file:
        file.write(b"x")
    with pytest.raises(InputError, match="at most 6,291,456 bytes") as error:
        build_config({}, {**BASE, "payload": body})
    assert one_line(error.value)


def test_run_directories_never_lead_outside_the_reports_directory(tmp_path):
    from tuner.report.publish import create_run_dir

    reports, elsewhere = tmp_path / "reports", tmp_path / "elsewhere"
    reports.mkdir()
    elsewhere.mkdir()
    (reports / "ep").symlink_to(elsewhere)
    with pytest.raises(InputError, match="outside"):
        build_config({}, {**BASE, "reports_dir": reports})
    with pytest.raises(InputError, match="outside"):
        create_run_dir(reports, "ep")
    with pytest.raises(InputError, match="not a SageMaker endpoint name"):
        create_run_dir(reports, "../../tmp/x")
    assert list(elsewhere.iterdir()) == [] and [p.name for p in reports.iterdir()] == ["ep"]
    assert create_run_dir(tmp_path / "fresh", "ep").parent == tmp_path / "fresh" / "ep"


# --- traffic CSV ---------------------------------------------------------------------------

TIMES = st.one_of(
    st.datetimes(min_value=__import__("datetime").datetime(2026, 1, 1),
                 max_value=__import__("datetime").datetime(2026, 1, 2)).map(
        lambda t: t.isoformat() + "Z"),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:00Z", "1677-09-22T00:00:00Z",
                     "2262-04-11T00:00:00Z", "1e30", "", "NaT", "now", "2026-13-45"]),
    st.text(max_size=12))
COUNTS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**20),
                   st.sampled_from(["inf", "nan", "-1", "", "1e400", "x"]))


@FAST
@given(st.lists(st.tuples(TIMES, COUNTS), max_size=25),
       st.sampled_from(["timestamp,invocations", "invocations,timestamp", "a,b", ""]),
       st.one_of(st.none(), st.binary(max_size=60)))
def test_traffic_csv_is_replayable_or_refused_in_one_line(rows, header, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traffic.csv"
        if garbage is None:
            text = "\n".join([header] + [f"{json.dumps(t)},{c}" for t, c in rows])
            path.write_text(text + "\n", errors="surrogatepass")
        else:
            path.write_bytes(garbage)
        try:
            traffic = read_csv(path)
        except InputError as error:
            assert one_line(error)
            return
        values = traffic.invocations
        assert values.size <= MAX_MINUTES and (values >= 0).all() and (values < 1e12).all()


# --- run directories -----------------------------------------------------------------------

def measured_result() -> dict:
    """A complete result.json as `tuner tune` writes it, with a queue model."""
    from tests.unit.test_report import sample_result

    result = json.loads(json.dumps(sample_result().to_json()))
    result["endpoint"] = "cli-ep"
    for part in ("scalable_target", "policy"):
        result[part]["ResourceId"] = RID
    curve = [{"rps": float(r), "p_ms": 20.0 + r / 5, "low_ms": 18.0 + r / 5,
              "high_ms": 25.0 + r / 5} for r in range(0, 260, 20)]
    result["queue_model"] = {
        "model": "M/G/c", "slots": 4, "slots_range": [4, 5], "service_requests": 900,
        "service_mean_ms": 20.0, "service_p50_ms": 20.0, "service_p99_ms": 21.0,
        "poisson_capacity_rps": 190.0, "poisson_capacity_band": [180.0, 199.0],
        "uniform_capacity_rps": 199.0, "fit_error": 0.05, "queueing_observed": True,
        "measured_arrivals": "poisson", "curve": curve,
        "uniform_curve": [{"rps": p["rps"], "p_ms": p["p_ms"]} for p in curve]}
    return result


def json_paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_paths(item, (*prefix, index))


HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE_NAMES),
    st.text(max_size=10), st.just([]), st.just({}), st.just([1.0, None, "x"]),
    st.just({"ResourceId": "endpoint/../../x"}))


@st.composite
def corrupted(draw, document: dict) -> bytes:
    """`document` corrupted: a value replaced or removed, the bytes truncated, or junk."""
    kind = draw(st.sampled_from(["replace", "replace", "delete", "truncate", "junk"]))
    text = json.dumps(document)
    if kind == "truncate":
        return text.encode()[:draw(st.integers(0, len(text) - 1))]
    if kind == "junk":
        return draw(st.binary(max_size=80))
    doc = copy.deepcopy(document)
    paths = [p for p in json_paths(doc) if p]
    path = draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(HOSTILE_VALUES)
    return json.dumps(doc).encode()  # NaN and Infinity written as the tokens Python writes


def run_dir_with(tmp: str, name: str, content: bytes) -> Path:
    run_dir = Path(tmp) / "cli-ep" / "20260101T000000Z"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / name).write_bytes(content)
    return run_dir


def test_the_untouched_result_passes_every_reader(tmp_path):
    run_dir = run_dir_with(str(tmp_path), "result.json", json.dumps(measured_result()).encode())
    apply_export_simulate(run_dir)
    validate_baseline(run_dir)


def apply_export_simulate(run_dir: Path) -> None:
    """What `apply`, `export` and `simulate` do with result.json before any AWS call or
    write: read and check, render the exports, build the curve, render the report."""
    result = load_run(run_dir)
    for fmt in FORMATS:
        render(fmt, result.scalable_target, result.policy, result.region)
    view = result.to_json()
    checked(ReportRecord, view, "result.json")
    scaling_model(result, SimulationOptions(traffic="unused.csv"))
    with contextlib.suppress(ValueError):  # simulate_run turns this into an InputError
        curve_from_result(result)
    render_markdown(view)
    render_html(view, {})
    steps_frame(view)


def validate_baseline(run_dir: Path) -> None:
    from tuner.report.baseline import candidate_tune_config, read_baseline

    config = ValidateConfig(baseline=run_dir, url="http://127.0.0.1:9",
                            reports_dir=run_dir / "reports")
    candidate_tune_config(config, read_baseline(run_dir))


@FAST
@given(st.data())
def test_a_corrupt_result_json_is_refused_in_one_line_by_every_reader(data):
    content = data.draw(corrupted(measured_result()))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = run_dir_with(tmp, "result.json", content)
        for reader in (apply_export_simulate, validate_baseline):
            try:
                reader(run_dir)
            except InputError as error:
                assert one_line(error)
        assert sorted(p.name for p in run_dir.iterdir()) == ["result.json"]


def raw_run_dir(root: Path) -> Path:
    """run.json and locust/ as a `tuner tune` run leaves them (a small one)."""
    from tuner.measure.loadtest import build_plan

    config = build_config({}, {**BASE, "endpoint": "cli-ep", "reports_dir": root})
    run_dir = root / "cli-ep" / "20260101T000000Z"
    (run_dir / "locust").mkdir(parents=True)
    (run_dir / RUN_FILE).write_text(json.dumps({
        "config": config.model_dump(mode="json"), "region": "us-east-1",
        "instances_under_test": 1, "scaling_before": {"scalable_target": None, "policies": []},
        "started_at": "2026-01-01T00:00:00+00:00"}))
    steps, rows = [], ["step,intended_s,completed_s,latency_ms,ok"]
    for index, rate in enumerate([4, 6, 8]):
        steps.append({"index": index, "offered_rps": rate, "duration_s": 6.0, "warmup_s": 1.0,
                      "phase": "ramp", "abort_reason": None, "timeout_s": 2.0})
        rows += [f"{index},{k / rate:.6f},{k / rate + 0.02:.6f},20.000,1"
                 for k in range(6 * rate)]
    (run_dir / "locust" / "loadtest.json").write_text(json.dumps({
        "complete": True, "stop_reason": "search complete", "finished_at": 1.8e9,
        "plan": build_plan(config, run_dir / "locust", "us-east-1"), "steps": steps,
        "step_meta": [{"index": i, "generator_cpu_percent": [10.0],
                       "send_lag_p90_ms": [float("nan")], "unsent_share": 0.0}
                      for i in range(3)]}))
    (run_dir / "locust" / "samples.csv").write_text("\n".join(rows) + "\n")
    return run_dir


SAMPLE_JUNK = st.one_of(st.sampled_from(["inf", "nan", "-1", "", "x", "1e400", "0.5", "7"]),
                        st.text(max_size=5))


@st.composite
def corrupted_samples(draw, text: str) -> bytes:
    lines = text.splitlines()
    kind = draw(st.sampled_from(["cell", "cell", "truncate", "header", "junk"]))
    if kind == "truncate":
        return text.encode()[:draw(st.integers(0, len(text) - 1))]
    if kind == "junk":
        return draw(st.binary(max_size=80))
    if kind == "header":
        lines[0] = draw(st.sampled_from(["step,intended_s,latency_ms,ok", "a,b,c,d,e", ""]))
        return "\n".join(lines).encode()
    row = draw(st.integers(1, len(lines) - 1))
    cells = lines[row].split(",")
    cells[draw(st.integers(0, len(cells) - 1))] = draw(SAMPLE_JUNK)
    lines[row] = ",".join(cells)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    run_dir = raw_run_dir(tmp_path_factory.mktemp("raw"))
    return {name: (run_dir / name).read_text() for name in
            (RUN_FILE, "locust/loadtest.json", "locust/samples.csv")}


def read_raw(run_dir: Path) -> None:
    """What `tuner report` reads before analysing and writing anything."""
    run = read_record(run_dir / RUN_FILE, RunRecord)
    run_config(run["config"], run_dir / RUN_FILE)
    read_raw_data(run_dir / "locust")


@FAST
@given(st.data())
def test_corrupt_raw_data_is_refused_in_one_line_before_any_analysis(raw_run, data):
    name = data.draw(st.sampled_from(sorted(raw_run)))
    original = raw_run[name]
    content = (data.draw(corrupted_samples(original)) if name.endswith(".csv")
               else data.draw(corrupted(json.loads(original))))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "cli-ep" / "20260101T000000Z"
        for other, text in raw_run.items():
            (run_dir / other).parent.mkdir(parents=True, exist_ok=True)
            (run_dir / other).write_text(text)
        (run_dir / name).write_bytes(content)
        try:
            read_raw(run_dir)
        except InputError as error:
            assert one_line(error)


# --- the CLI: exit 2, one line, nothing written, no AWS call, no flow started -------------

@pytest.fixture(scope="module")
def cli_command():
    """`tuner`'s click command, built once: typer builds it again on every invoke (reading
    every command's signature, ~0.1 s), which is what a hundred invocations here cost."""
    return typer.main.get_command(app)


@pytest.fixture
def cli(monkeypatch, cli_command):
    """Runs `tuner ...` in-process; any AWS client or Prefect flow start fails the test."""
    def no_aws(*args, **kwargs):
        raise AssertionError(f"AWS client created: {args}")

    def no_flow():
        raise AssertionError("a Prefect flow was about to start")

    monkeypatch.setattr(aws, "client", no_aws)
    monkeypatch.setattr("flows.runtime.quiet", no_flow)
    runner = CliRunner()

    def invoke(args):
        done = runner.invoke(cli_command, [str(a) for a in args])
        assert done.exception is None or isinstance(done.exception, SystemExit), (
            done.exception, done.output)
        return done
    return invoke


def refused(done) -> bool:
    return done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1 \
        and done.stderr.startswith("error: ")


def tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


TUNE_FLOATS = ["--start-rps", "--max-test-seconds", "--request-timeout-seconds",
               "--max-change", "--sla-latency-ms", "--max-rps", "--linear-step-rps",
               "--precision", "--confidence", "--safety-factor", "--max-error-rate",
               "--sla-percentile"]


@pytest.mark.parametrize("flag", TUNE_FLOATS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_tune_refuses_non_finite_numbers(cli, tmp_path, flag, value):
    args = ["tune", "--endpoint", "ep", "--url", "http://127.0.0.1:9", "--sla-latency-ms",
            "100", "--reports-dir", tmp_path, flag, value]
    done = cli(args)
    assert refused(done), done.output
    assert flag in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("flag", "value"), [
    ("--endpoint", "../../tmp/x"), ("--variant", "a/../b"), ("--region", "us-east-1/../x"),
    ("--url", "http://host:99999/"), ("--url", "http://a b/"), ("--reports-dir", "FILE"),
    ("--content-type", "application/json" + "x" * 2000)])
def test_tune_refuses_hostile_names_before_any_aws_call(cli, tmp_path, flag, value):
    base = {"--endpoint": "ep", "--reports-dir": tmp_path}
    if value == "FILE":
        value = tmp_path / "a-file"
        value.write_text("")
    args = ["tune", "--sla-latency-ms", "100", "--min-capacity", "1", "--max-capacity", "2"]
    for key, default in {**base, flag: value}.items():
        args += [key, default]
    done = cli(args)
    assert refused(done), done.output
    assert [p.name for p in tmp_path.iterdir()] == (["a-file"] if flag == "--reports-dir"
                                                    else [])


def test_tune_refuses_a_payload_above_6_mb(cli, tmp_path):
    body = tmp_path / "big.json"
    with body.open("wb") as file:
        file.truncate(MAX_PAYLOAD_BYTES + 1)
    done = cli(["tune", "--endpoint", "ep", "--sla-latency-ms", "100", "--payload", body,
                "--reports-dir", tmp_path / "reports"])
    assert refused(done) and "6 MB" in done.stderr
    assert not (tmp_path / "reports").exists()


def bad_payload_sets(root: Path) -> dict[str, tuple[Path, str]]:
    """One of each refused --payloads source: (path, what the one line must say)."""
    root.mkdir()
    (root / "empty").mkdir()
    (root / "broken.tar.gz").write_bytes(b"not gzip")
    (root / "records.jsonl").write_text('{"body": "{}", "content_type": "application/json"}\n'
                                        "{not json\n")
    (root / "untyped").mkdir()
    (root / "untyped" / "a.bin").write_bytes(b"x")
    with (root / "huge.jsonl").open("w") as file:
        file.write(json.dumps({"body": "x" * (MAX_PAYLOAD_BYTES + 1),
                               "content_type": "text/plain"}) + "\n")
    return {"empty": (root / "empty", "holds no payload"),
            "unreadable archive": (root / "broken.tar.gz", "not a readable .tar.gz"),
            "invalid record": (root / "records.jsonl", "line 2 is not valid JSON"),
            "content type unknown": (root / "untyped", "--content-type"),
            "body over 6 MB": (root / "huge.jsonl", "6 MB"),
            "missing": (root / "nope", "no such file")}


@pytest.mark.parametrize("case", ["empty", "unreadable archive", "invalid record",
                                  "content type unknown", "body over 6 MB", "missing"])
def test_every_command_refuses_a_bad_payload_set_in_one_line_before_anything(
        cli, tmp_path, case):
    source, says = bad_payload_sets(tmp_path / "sets")[case]
    reports = tmp_path / "reports"
    for line in (["tune", "--endpoint", "ep", "--sla-latency-ms", "100", "--url",
                  "http://127.0.0.1:9", "--reports-dir", reports],
                 ["worker", "--master-host", "127.0.0.1", "--url", "http://127.0.0.1:9"]):
        done = cli([*line, "--payloads", source])
        assert refused(done) and says in done.stderr, (line[0], done.output)
    assert not reports.exists()


@pytest.mark.parametrize("args", [
    ["--max-regression", "nan"], ["--expected-peak-rps", "inf"],
    ["--max-test-seconds", "inf"], ["--endpoint", "../x", "--url", None]])
def test_validate_refuses_bad_flags(cli, tmp_path, args):
    run_dir = run_dir_with(str(tmp_path), "result.json", json.dumps(measured_result()).encode())
    flags = {"--url": "http://127.0.0.1:9"}
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    flags.update(pairs)
    line = ["validate", "--baseline", run_dir, "--reports-dir", tmp_path / "reports"]
    for key, value in flags.items():
        if value is not None:
            line += [key, value]
    done = cli(line)
    assert refused(done), done.output
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(("key", "value"), [
    ("endpoint", "../../tmp/x"), ("endpoint", "a/b"), ("sla", {"percentile": float("inf")}),
    ("instances_under_test", 0), ("capacity_ci", [float("nan"), None])])
def test_validate_refuses_a_hostile_baseline_before_the_flow(cli, tmp_path, key, value):
    result = measured_result()
    result[key] = value
    run_dir = run_dir_with(str(tmp_path), "result.json", json.dumps(result).encode())
    before = tree(tmp_path)
    done = cli(["validate", "--baseline", run_dir, "--url", "http://127.0.0.1:9",
                "--reports-dir", tmp_path / "reports"])
    assert refused(done), done.output
    assert tree(tmp_path) == before


@FEW
@given(st.data())
def test_apply_dry_run_refuses_a_corrupt_run_without_calling_aws(cli_command, data):
    content = data.draw(corrupted(measured_result()))
    calls = []

    def no_aws(*args, **kwargs):
        calls.append(args)
        raise AssertionError("AWS reached")

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(aws, "client", no_aws)
        run_dir = run_dir_with(tmp, "result.json", content)
        before = tree(Path(tmp))
        done = CliRunner().invoke(cli_command, ["apply", str(run_dir), "--dry-run"])
        if calls:  # only a recommendation that passed every check may reach AWS
            load_run(run_dir)
            return
        assert refused(done), (done.output, done.exception)
        assert tree(Path(tmp)) == before


@pytest.mark.parametrize("args", [
    ["--max-change", "inf"], ["--max-change", "nan"], ["--max-age", "infd"],
    ["--max-age", "nan"], ["--max-age", "1e300h"]])
def test_apply_refuses_non_finite_flags(cli, tmp_path, args):
    run_dir = run_dir_with(str(tmp_path), "result.json", json.dumps(measured_result()).encode())
    done = cli(["apply", run_dir, "--dry-run", *args])
    assert refused(done), done.output


@pytest.mark.parametrize("args", [
    ["--days", "inf"], ["--target", "nan"], ["--price-per-instance-hour", "inf"],
    ["--min-capacity", "0"], ["--instance-startup", "-1"], ["--days", "30"]])
def test_simulate_refuses_bad_flags_before_reading_anything(cli, tmp_path, args):
    run_dir = run_dir_with(str(tmp_path), "result.json", json.dumps(measured_result()).encode())
    before = tree(tmp_path)
    done = cli(["simulate", run_dir, "--traffic", "cloudwatch", *args])
    assert refused(done), done.output
    assert tree(tmp_path) == before


def test_export_and_simulate_refuse_a_policy_for_another_variant(cli, tmp_path):
    result = measured_result()
    result["policy"]["ResourceId"] = "endpoint/other/variant/AllTraffic"
    run_dir = run_dir_with(str(tmp_path), "result.json", json.dumps(result).encode())
    traffic = tmp_path / "t.csv"
    traffic.write_text("timestamp,invocations\n2026-01-01T00:00:00Z,1\n")
    before = tree(tmp_path)
    for args in (["export", run_dir], ["simulate", run_dir, "--traffic", traffic]):
        done = cli(args)
        assert refused(done) and "not this run's" in done.stderr, done.output
    assert tree(tmp_path) == before


@pytest.mark.parametrize("args", [
    ["--master-port", "0"], ["--endpoint", "../x"], ["--master-host", "a b"],
    ["--processes", "0"], ["--region", "nowhere"], ["--runtime-client", "curl"]])
def test_worker_refuses_bad_flags_before_starting_locust(cli, monkeypatch, args):
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("Locust started"))
    flags = {"--master-host": "10.0.0.1", "--endpoint": "ep", "--region": "us-east-1"}
    flags.update(dict(zip(args[::2], args[1::2], strict=True)))
    done = cli(["worker", *[x for pair in flags.items() for x in pair]])
    assert refused(done), done.output


REPORT_CASES = {
    "run.json endpoint": (RUN_FILE, lambda d: {**d, "config": {**d["config"],
                                                                "endpoint": "../../x"}}),
    "run.json infinite SLA": (RUN_FILE, lambda d: {**d, "config": {
        **d["config"], "sla_latency_ms": 1e400}}),
    "run.json region": (RUN_FILE, lambda d: {**d, "region": "us-east-1/../../x"}),
    "run.json truncated": (RUN_FILE, lambda d: json.dumps(d)[:40]),
    "loadtest.json step": ("locust/loadtest.json", lambda d: {
        **d, "steps": [{**d["steps"][0], "duration_s": "long"}]}),
    "samples.csv infinity": ("locust/samples.csv", lambda t: t.replace(",20.000,", ",inf,", 1)),
    "samples.csv unknown step": ("locust/samples.csv", lambda t: t + "9,1.0,1.1,5.0,1\n"),
    "samples.csv binary": ("locust/samples.csv", lambda t: "\x00\xff"),
    "result.json policy elsewhere": ("result.json", lambda d: {
        "policy": {**measured_result()["policy"], "ResourceId": "endpoint/x/variant/y"}}),
    "simulation.json junk": ("simulation.json", lambda d: {"summary": {}}),
    "result.json newer schema": ("result.json", lambda d: {
        **measured_result(), "schema_version": 99}),
    "result.json nested too deeply": ("result.json", lambda d: {
        **measured_result(), "plan": json.loads("[" * 500 + "]" * 500)}),
}


@pytest.mark.parametrize("case", sorted(REPORT_CASES))
def test_report_refuses_a_hostile_run_directory_and_writes_nothing(cli, tmp_path, case):
    name, change = REPORT_CASES[case]
    run_dir = raw_run_dir(tmp_path)
    path = run_dir / name
    if name.endswith(".csv"):
        path.write_text(change(path.read_text()), errors="surrogateescape")
    else:
        old = json.loads(path.read_text()) if path.exists() else {}
        new = change(old)
        path.write_text(new if isinstance(new, str) else json.dumps(new))
    before = tree(tmp_path)
    done = cli(["report", run_dir])
    assert refused(done), done.output
    assert tree(tmp_path) == before


def test_report_writes_no_index_outside_a_reports_directory(tmp_path):
    run_dir = raw_run_dir(tmp_path / "a")
    moved = tmp_path / "b" / "loose-run"
    moved.parent.mkdir()
    run_dir.rename(moved)
    regenerate_report(moved)
    assert (moved / "report.html").exists()
    assert sorted(os.listdir(tmp_path / "b")) == ["loose-run"]  # no index.html beside it
    assert not (tmp_path / "index.html").exists()


def test_report_keeps_what_it_cannot_recompute_from_the_old_result(tmp_path):
    """`tuner report` rebuilds the measurement; the old result.json's facts stay: what
    happened at apply, why AWS was not consulted, a signal, keys a newer version added."""
    run_dir = raw_run_dir(tmp_path)
    old = {**measured_result(), "aws_note": "AWS not consulted (test)",
           "interrupted": "SIGTERM", "from_later": {"kept": True}}
    (run_dir / "result.json").write_text(json.dumps(old))
    again = regenerate_report(run_dir).to_json()
    assert again["aws_note"] == "AWS not consulted (test)"
    assert again["interrupted"] == "SIGTERM"
    assert again["from_later"] == {"kept": True}
    assert again["policy"] == old["policy"] and again["apply_status"] == old["apply_status"]


def test_history_skips_hostile_runs(tmp_path):
    from tuner.report.history import read_entries

    run_dir_with(str(tmp_path), "result.json", json.dumps(measured_result()).encode())
    for name, content in (("bad1", b"\xff\xfe"), ("bad2", b"[" * 100_000),
                          ("bad3", json.dumps({**measured_result(), "sla": []}).encode())):
        bad = tmp_path / "cli-ep" / name
        bad.mkdir()
        (bad / "result.json").write_bytes(content)
    assert [e.run_dir for e in read_entries(tmp_path)] == ["cli-ep/20260101T000000Z"]


def test_readme_states_every_range_the_code_enforces():
    from tuner.config import VALIDATE_LIMITS
    from tuner.simulate.command import FLAGS, SIMULATION_LIMITS

    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    for limits in (TUNE_LIMITS, VALIDATE_LIMITS, SIMULATION_LIMITS):
        for key, (limit, _) in limits.items():
            flag = FLAGS.get(key, "--" + key.replace("_", "-"))
            assert f"`{flag}` {limit.text()}" in readme, (flag, limit.text())


def test_every_step_spec_field_is_one_the_loadtest_schema_reads():
    """loadtest.json holds `StepSpec`s as written: a field added to one and not the other
    would make every new run's raw data unreadable by `tuner report`."""
    from dataclasses import fields

    from tuner.measure.analysis import StepSpec
    from tuner.report.runfiles import SpecRecord

    assert {f.name for f in fields(StepSpec)} == set(SpecRecord.model_fields)
