"""`tuner demo` / `make demo`: the whole flow on this machine, with nothing from AWS.

Starts the bundled model server (4 slots x 20 ms: saturates at 200 rps; under Poisson
arrivals its p90 stays within 100 ms up to about 186 rps, the true capacity) and a local
moto server with an endpoint in it, points boto3 at moto through the standard
$AWS_ENDPOINT_URL, and runs the same flow as `tuner tune --url ...`, applying the policy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from tuner.demo.servers import create_endpoint, model_server, moto_server
from tuner.measure.queueing import ServiceLaw, capacity_at_sla
from tuner.report.result import RunResult

DEMO_ENDPOINT = "demo-endpoint"
DEMO_REGION = "us-east-1"


def run_demo(reports_dir: Path, run_tune: Callable[[dict, dict], RunResult],
             max_test_seconds: float = 120.0) -> RunResult:
    """`run_tune` is the CLI's tune (`tuner.cli.run_tune`), passed in: the demo runs exactly
    what `tuner tune --url ...` runs, without importing the CLI back (no cycle)."""
    with model_server(slots=4, service_ms=20.0) as server, moto_server() as aws_url:
        os.environ.update({
            "AWS_ENDPOINT_URL": aws_url,
            "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": DEMO_REGION,
        })
        os.environ.pop("AWS_PROFILE", None)
        create_endpoint(DEMO_ENDPOINT, region=DEMO_REGION)
        truth = capacity_at_sla(ServiceLaw.parse("constant:20"), 4, 90.0, 100.0)
        typer.echo(f"model server {server.url}: saturates at {server.capacity_rps:.0f} rps, "
                   f"true capacity at p90 <= 100 ms under Poisson arrivals {truth:.1f} rps; "
                   f"local AWS API (moto) {aws_url}", err=True)
        result = run_tune({}, {
            "endpoint": DEMO_ENDPOINT, "variant": "AllTraffic", "region": DEMO_REGION,
            "url": server.url, "instances": 1, "sla_percentile": 90.0,
            "sla_latency_ms": 100.0, "max_error_rate": 0.01, "min_capacity": 1,
            "max_capacity": 4, "safety_factor": 0.5, "start_rps": 20.0,
            "max_test_seconds": max_test_seconds, "reports_dir": reports_dir,
        })
        assert result.max_sustainable_rps is not None and result.capacity_ci is not None
        error = (result.max_sustainable_rps - truth) / truth
        low, high = result.capacity_ci
        upper = "open" if high is None else f"{high:.1f}"
        typer.echo(f"measured {result.max_sustainable_rps:.1f} rps vs true {truth:.1f} rps: "
                   f"{error:+.1%}; interval {low:.1f}-{upper} rps, the target rests on "
                   f"{low:.1f}", err=True)
        read_back_with_aws_cli(result.region, f"endpoint/{DEMO_ENDPOINT}/variant/AllTraffic")
        return result


def read_back_with_aws_cli(region: str, resource_id: str) -> None:
    """Show what is stored, read by the AWS CLI itself rather than by our own code."""
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if aws is None:
        typer.echo("(AWS CLI not installed: skipping the read-back)", err=True)
        return
    command = [aws, "application-autoscaling", "describe-scaling-policies",
               "--service-namespace", "sagemaker", "--resource-id", resource_id,
               "--region", region, "--output", "table", "--query",
               "ScalingPolicies[].{Name:PolicyName,Type:PolicyType,"
               "Metric:TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification"
               ".PredefinedMetricType,Target:TargetTrackingScalingPolicyConfiguration.TargetValue}"]
    typer.echo("read back by the AWS CLI:", err=True)
    shown = subprocess.run(command, capture_output=True, text=True, timeout=60)
    typer.echo(shown.stdout or shown.stderr, err=True)
