"""Stopping a real `tuner tune` (runtime API path, a Prefect server, moto server):
SIGINT and SIGTERM end it within seconds with the scaling restored and a report marked
interrupted; after SIGKILL the endpoint's tags say what to restore and `tuner recover`
restores it exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.integration.conftest import local_aws_with

pytestmark = pytest.mark.integration

TUNER = [sys.executable, "-m", "tuner.cli"]
RID = "endpoint/sig-ep/variant/AllTraffic"
# Scheduled scaling suspended by its owner: the exact state must come back, not a default.
FOUND = {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
         "ScheduledScalingSuspended": True}


@pytest.fixture(scope="module")
def local_aws():
    with local_aws_with("sig-ep") as url:
        yield url


@pytest.fixture
def autoscaling(local_aws):
    client = boto3.client("application-autoscaling", region_name="us-east-1",
                          endpoint_url=local_aws)
    client.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RID,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=1,
        MaxCapacity=3, SuspendedState=FOUND)
    return client


def _suspended_state(autoscaling):
    (target,) = autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[RID])["ScalableTargets"]
    return target["SuspendedState"]


def _markers(local_aws):
    sagemaker = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=local_aws)
    arn = sagemaker.describe_endpoint(EndpointName="sig-ep")["EndpointArn"]
    return [t for t in sagemaker.list_tags(ResourceArn=arn)["Tags"]
            if t["Key"].startswith("endpoint-tuner:suspended:")]


def _start_tune(tmp_path, local_aws, prefect_env=None):
    """`prefect_env`: the session's Prefect server (`prefect_api`), or None for a temporary
    one started by the run, as a user's first run does. Output to files: after a SIGKILL,
    a temporary Prefect server still holds inherited pipes open."""
    out, err = (tmp_path / "stdout").open("w"), (tmp_path / "stderr").open("w")
    return subprocess.Popen(
        TUNER + ["tune", "--endpoint", "sig-ep", "--sla-latency-ms", "1000", "--start-rps", "10",
                 "--max-rps", "40", "--max-test-seconds", "60", "--dry-run",
                 "--reports-dir", str(tmp_path / "reports")],
        stdout=out, stderr=err, text=True,
        env={**os.environ, "AWS_ENDPOINT_URL": local_aws, **(prefect_env or {})})


def _output(tmp_path):
    return (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()


def _locust_running(tmp_path):
    """Any Locust process writing under this test's directory."""
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "locust" in line and str(tmp_path) in line]


def _wait_until_measuring(process, autoscaling, timeout_s=120.0):
    """Until dynamic scaling is suspended (the load test is starting), then 2 s more."""
    deadline = time.monotonic() + timeout_s
    while not _suspended_state(autoscaling)["DynamicScalingOutSuspended"]:
        assert process.poll() is None, "tune ended before measuring"
        assert time.monotonic() < deadline, "the load test never started"
        time.sleep(0.3)
    time.sleep(2.0)


# SIGTERM with the temporary Prefect server a first run starts (it must be stopped within
# the 10 s too), SIGINT with a configured server (`PREFECT_API_URL`).
@pytest.mark.parametrize(("signum", "code", "own_server"), [(signal.SIGTERM, 143, True),
                                                            (signal.SIGINT, 130, False)])
def test_a_signal_restores_scaling_reports_and_exits_within_10_s(
        tmp_path, local_aws, autoscaling, signum, code, own_server, request):
    prefect_env = None if own_server else request.getfixturevalue("prefect_api")
    process = _start_tune(tmp_path, local_aws, prefect_env)
    _wait_until_measuring(process, autoscaling)
    sent = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=30)
    assert time.monotonic() - sent < 10.0
    stdout, stderr = _output(tmp_path)
    assert process.returncode == code, stderr[-2000:]
    assert _suspended_state(autoscaling) == FOUND
    assert _markers(local_aws) == []
    assert f"interrupted by {signal.Signals(signum).name}" in stderr
    run_dir = Path(stdout.strip().splitlines()[-1])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["interrupted"] == signal.Signals(signum).name
    assert "restored as found" in result["error"] and not result["applied"]
    assert (run_dir / "report.html").exists()


def test_after_sigkill_the_tags_say_what_to_restore_and_recover_does_it(
        tmp_path, local_aws, autoscaling, prefect_api):
    process = _start_tune(tmp_path, local_aws, prefect_api)
    _wait_until_measuring(process, autoscaling)
    process.kill()
    process.wait(timeout=30)
    deadline = time.monotonic() + 15.0  # it stops within a second or two; a busy CI is slower
    while _locust_running(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _locust_running(tmp_path), "Locust outlived the tuner"
    assert _suspended_state(autoscaling)["DynamicScalingOutSuspended"]  # left suspended
    (marker,) = _markers(local_aws)
    assert f"pid={process.pid}" in marker["Value"]

    done = subprocess.run(TUNER + ["recover", "--endpoint", "sig-ep"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "AWS_ENDPOINT_URL": local_aws})
    assert done.returncode == 0, done.stderr
    assert "restored dynamic scaling" in done.stdout
    assert _suspended_state(autoscaling) == FOUND
    assert _markers(local_aws) == []
    again = subprocess.run(TUNER + ["recover", "--endpoint", "sig-ep"], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "AWS_ENDPOINT_URL": local_aws})
    assert again.returncode == 0 and "no suspension left" in again.stdout
