"""`tuner demo` / `make demo`: the whole flow on this machine, with nothing from AWS.

Starts the bundled model server (4 slots x 20 ms per row of a request) and a local moto
server with an endpoint in it, points boto3 at moto through the standard
$AWS_ENDPOINT_URL, and runs the same flow as `tuner tune --url ... --payloads ...`,
applying the policy. The traffic is a mix, as production traffic is: 80% one-row requests
and 20% four-row ones (`DEMO_PAYLOADS`). Under Poisson arrivals the mix keeps its p90 within
100 ms up to about 100 rps (the true capacity), where its smallest request alone would
sustain about 186 rps: a capacity measured with one small body would be nearly twice what
the endpoint serves.
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
# The demo's payload set, `--payloads` JSON Lines: a one-row body (weight 4) and a
# four-row body (weight 1). DEMO_LAW is that mix as the per-row server serves it: the truth.
DEMO_PAYLOADS = Path(__file__).with_name("demo-payloads.jsonl")
DEMO_LAW = "constant:20@rows=1:0.8,4:0.2"
SMALLEST_LAW = "constant:20"


def run_demo(reports_dir: Path, run_tune: Callable[[dict, dict], RunResult],
             max_test_seconds: float = 120.0) -> RunResult:
    """`run_tune` is the CLI's tune (`tuner.cli.run_tune`), passed in: the demo runs exactly
    what `tuner tune --url ...` runs, without importing the CLI back (no cycle)."""
    with model_server(slots=4, service_ms=20.0, per_row=True) as server, \
            moto_server() as aws_url:
        os.environ.update({
            "AWS_ENDPOINT_URL": aws_url,
            "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo",
            "AWS_DEFAULT_REGION": DEMO_REGION,
        })
        os.environ.pop("AWS_PROFILE", None)
        create_endpoint(DEMO_ENDPOINT, region=DEMO_REGION)
        truth = capacity_at_sla(ServiceLaw.parse(DEMO_LAW), 4, 90.0, 100.0)
        smallest = capacity_at_sla(ServiceLaw.parse(SMALLEST_LAW), 4, 90.0, 100.0)
        typer.echo(f"model server {server.url}: 4 slots x 20 ms per row; the demo's mix (80% "
                   f"one-row, 20% four-row requests) meets p90 <= 100 ms under Poisson "
                   f"arrivals up to {truth:.1f} rps (its one-row request alone: "
                   f"{smallest:.1f} rps); local AWS API (moto) {aws_url}", err=True)
        result = run_tune({}, {
            "endpoint": DEMO_ENDPOINT, "variant": "AllTraffic", "region": DEMO_REGION,
            "url": server.url, "instances": 1, "sla_percentile": 90.0,
            "sla_latency_ms": 100.0, "max_error_rate": 0.01, "min_capacity": 1,
            "max_capacity": 4, "safety_factor": 0.5, "start_rps": 20.0,
            "max_test_seconds": max_test_seconds, "reports_dir": reports_dir,
            "payloads": str(DEMO_PAYLOADS), "content_type": "application/json",
        })
        assert result.max_sustainable_rps is not None and result.capacity_ci is not None
        error = (result.max_sustainable_rps - truth) / truth
        low, high = result.capacity_ci
        upper = "open" if high is None else f"{high:.1f}"
        typer.echo(f"measured {result.max_sustainable_rps:.1f} rps vs true {truth:.1f} rps: "
                   f"{error:+.1%}; interval {low:.1f}-{upper} rps, the target rests on "
                   f"{low:.1f} (the one-row request alone: {smallest:.1f} rps)", err=True)
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
