"""Local stand-ins started as subprocesses: the bundled model server and a moto AWS API.

Shared by `tuner demo`, the integration tests and the benchmarks. Each context manager
waits until its server answers and always stops it, even on errors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from tuner.errors import RunError
from tuner.measure.queueing import ServiceLaw


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    # Only "does it answer?": a test server's self-signed certificate is not checked here.
    unverified = ssl._create_unverified_context()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RunError(f"server for {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1, context=unverified):
                return
        except OSError:
            time.sleep(0.1)
    raise RunError(f"server for {url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def _process(command: list[str], ready_url: str) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        _wait_http(ready_url, process)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@dataclass(frozen=True)
class ModelServer:
    """A running bundled model server: `service_ms` is its mean service time, `law` the
    service-time law each request's time is drawn from (e.g. `lognormal:40:1`)."""

    url: str
    slots: int
    service_ms: float
    law: str = ""

    @property
    def capacity_rps(self) -> float:
        """The saturation throughput: slots / mean service time, every slot busy.

        No arrival rate above it can be sustained, but it is not the capacity at a latency
        SLA: under Poisson arrivals requests queue well before saturation, and the highest
        rate meeting a percentile SLA is lower (for long-tailed laws or tight SLAs, much
        lower). `tuner.measure.queueing.capacity_at_sla` computes that one.
        """
        return self.slots * 1000.0 / self.service_ms


@contextlib.contextmanager
def model_server(slots: int = 4, service_ms: float = 20.0, error_rate: float = 0.0,
                 tls: tuple[str, str] | None = None, law: str | None = None,
                 seed: int = 0, per_row: bool = False) -> Iterator[ModelServer]:
    """The bundled model server: `slots` slots, each request served for a time drawn from
    the service-time `law` (`constant:<service_ms>` when None) with random seed `seed`
    (times the request's rows with `per_row`); with `tls` (certificate and key files), over
    HTTPS. A bad law raises ValueError before anything starts."""
    parsed = ServiceLaw.parse(law) if law is not None else ServiceLaw("constant", service_ms)
    port = free_port()
    command = [sys.executable, "-m", "tuner.demo.model_server", "--port", str(port),
               "--slots", str(slots), "--seed", str(seed), "--error-rate", str(error_rate)]
    # The caller's own text, not str(parsed): that rounds to 6 significant digits.
    command += ["--service-law", law.strip()] if law is not None else [
        "--service-ms", repr(float(service_ms))]
    if tls:
        command += ["--certfile", tls[0], "--keyfile", tls[1]]
    if per_row:
        command.append("--per-row")
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    with _process(command, url + "/ping"):
        yield ModelServer(url, slots, parsed.average_ms, str(parsed))


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A local moto server speaking the real AWS APIs; yields its endpoint URL."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    with _process(command, url + "/moto-api/"):
        yield url


def create_endpoint(endpoint: str, variant: str = "AllTraffic", instances: int = 1,
                    region: str = "us-east-1") -> None:
    """Create a model, endpoint config and endpoint (moto puts it InService at once)."""
    import boto3

    sagemaker = boto3.session.Session(region_name=region).client("sagemaker")
    role = "arn:aws:iam::123456789012:role/endpoint-tuner-demo"
    sagemaker.create_model(ModelName=f"{endpoint}-model", ExecutionRoleArn=role,
                           PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1."
                                             "amazonaws.com/demo-model:latest"})
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-config",
        ProductionVariants=[{"VariantName": variant, "ModelName": f"{endpoint}-model",
                             "InitialInstanceCount": instances,
                             "InstanceType": "ml.m5.large"}])
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")
