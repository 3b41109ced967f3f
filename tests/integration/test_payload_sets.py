"""`tuner tune --payloads` end to end: real Locust against the bundled per-row model server.

A production mix read from a Data Capture export in (moto) S3 measures the mix's capacity,
well below what its smallest member alone sustains; a set the endpoint rejects ends the run
after its first step, naming the payloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tuner.demo.servers import model_server, moto_server
from tuner.measure.queueing import ServiceLaw, capacity_at_sla

pytestmark = pytest.mark.integration

TUNER = [sys.executable, "-m", "tuner.cli"]
SMALL = {"instances": [[0.1, 0.2, 0.3, 0.4]]}
BIG = {"instances": [[0.1, 0.2, 0.3, 0.4]] * 8}


def capture_record(body: dict) -> str:
    """One SageMaker Data Capture record of a JSON request (and its answer)."""
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": json.dumps(body), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": '{"predictions": [0.5]}', "encoding": "JSON"}},
        "eventMetadata": {"eventId": "e", "inferenceTime": "2026-11-01T00:00:00Z"},
        "eventVersion": "0"})


def tune(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(TUNER + ["tune", "--endpoint", "mix-ep", "--dry-run", *args],
                          text=True, capture_output=True, timeout=400,
                          env={**os.environ, **env})


def test_a_captured_production_mix_measures_the_mix_not_its_smallest_request(
        tmp_path, prefect_api):
    # 80% one-row requests, 20% eight-row ones, captured over two hours (two objects).
    with moto_server() as aws_url:
        aws = {"AWS_ENDPOINT_URL": aws_url, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws_url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="captures")
        prefix = "dc/mix-ep/AllTraffic/2026/11/01"
        for hour, bodies in (("10", [SMALL] * 4 + [BIG]), ("11", [SMALL] * 4 + [BIG])):
            s3.put_object(Bucket="captures", Key=f"{prefix}/{hour}/capture.jsonl",
                          Body="\n".join(capture_record(b) for b in bodies).encode())
        with model_server(slots=2, service_ms=10.0, per_row=True) as server:
            done = tune(["--url", server.url, "--payloads", "s3://captures/dc/",
                         "--sla-latency-ms", "200", "--max-test-seconds", "45",
                         "--reports-dir", str(tmp_path)], {**aws, **prefect_api})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    result = json.loads((run_dir / "result.json").read_text())
    described = result["payloads"]["set"]
    assert (described["kind"], described["count"], described["source"]) == (
        "data-capture", 10, "s3://captures/dc/")
    rows = result["payloads"]["breakdown"]["rows"]
    # Each captured request is a payload; the eight-row ones are the slow ones.
    big = [r for r in rows if r["bytes_min"] == len(json.dumps(BIG))]
    small = [r for r in rows if r["bytes_min"] == len(json.dumps(SMALL))]
    assert len(big) == 2 and len(small) == 8
    assert min(r["p50_ms"] for r in big) > max(r["p50_ms"] for r in small)
    # The truth of the mix, and of its smallest request alone (Poisson arrivals, p90 <= 200).
    mix = capacity_at_sla(ServiceLaw.parse("constant:10@rows=1:0.8,8:0.2"), 2, 90.0, 200.0)
    smallest = capacity_at_sla(ServiceLaw.parse("constant:10"), 2, 90.0, 200.0)
    measured = result["max_sustainable_rps"]
    # 45 s of load is sample-bound: over 100 simulated runs of this case at this budget and
    # start (`benchmarks/offline_zoo.py --seeds 100 --cases mix-1x8 --budget-s 45
    # --start-rps 10`) the point spread from -34% to +14% of the mix's truth (median -15%).
    # The accuracy goal is the zoo benchmark's; here the mix must be what was measured:
    # within that spread of its truth, and nowhere near the smallest request's (193 rps).
    assert 0.55 * mix <= measured <= 1.25 * mix, (measured, mix)
    assert measured < 0.5 * smallest, (measured, smallest)
    report = (run_dir / "report.md").read_text()
    assert "## Requests" in report and "10 payload(s) from `s3://captures/dc/`" in report


def test_a_set_the_endpoint_rejects_ends_after_the_first_step_naming_the_payloads(
        tmp_path, prefect_api):
    payloads = tmp_path / "set.jsonl"
    payloads.write_text(json.dumps({"body": json.dumps(SMALL), "weight": 1}) + "\n"
                        + json.dumps({"body": "{not json", "weight": 9}) + "\n")
    with model_server(slots=2, service_ms=10.0) as server:
        done = tune(["--url", server.url, "--payloads", str(payloads), "--content-type",
                     "application/json", "--sla-latency-ms", "200", "--max-test-seconds", "120",
                     "--reports-dir", str(tmp_path / "reports")], prefect_api)
    assert done.returncode == 1, done.stderr[-3000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and f"{payloads}:2" in error[0] and "rejected" in error[0]
    assert f"{payloads}:1 " not in error[0]  # the good payload is not named
    run_dir = next((tmp_path / "reports" / "mix-ep").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert len(result["steps"]) == 1 and result["load_test_seconds"] < 20
    assert not result["applied"]


@pytest.mark.parametrize("kind", ["directory", "tarball", "data-capture file"])
def test_tune_takes_every_local_source_kind(tmp_path, prefect_api, kind):
    """A short real run per local source kind (S3 Data Capture and JSON Lines above): the
    run measures, and its record says what it sent."""
    import tarfile

    bodies = {"small.json": json.dumps(SMALL), "big.json": json.dumps(BIG)}
    directory = tmp_path / "set"
    directory.mkdir()
    for name, body in bodies.items():
        (directory / name).write_text(body)
    source = directory
    if kind == "tarball":
        source = tmp_path / "set.tar.gz"
        with tarfile.open(source, "w:gz") as archive:
            archive.add(directory, arcname=".")
    elif kind == "data-capture file":
        source = tmp_path / "capture.jsonl"
        source.write_text("\n".join(capture_record(json.loads(b)) for b in bodies.values()))
    with model_server(slots=2, service_ms=5.0, per_row=True) as server:
        done = tune(["--url", server.url, "--payloads", str(source), "--sla-latency-ms", "200",
                     "--start-rps", "20", "--max-test-seconds", "10",
                     "--reports-dir", str(tmp_path / "reports")], prefect_api)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 10 s may not resolve the SLA
    run_dir = next((tmp_path / "reports" / "mix-ep").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    described = result["payloads"]["set"]
    assert (described["kind"], described["count"]) == (kind.split(" ")[0], 2)
    assert result["steps"] and result["steps"][0]["requests"] > 0
    rows = (run_dir / "locust" / "samples.csv").read_text().splitlines()[1:]
    assert {row.rsplit(",", 1)[1] for row in rows} == {"0", "1"}  # both payloads were drawn
