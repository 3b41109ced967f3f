"""Locustfile: InvokeEndpoint through boto3 inside Locust (the slow path, kept as the
generator benchmark's baseline and as a fallback: `--runtime-client boto3`).

Requests are signed by boto3 with the standard credential chain and honour
$AWS_ENDPOINT_URL. Retries are off: a throttled or failed call is an error of the endpoint
under test, not something to hide. The plan (endpoint, variant, region) comes in through
$TUNER_PLAN; on its own set TUNER_ENDPOINT, TUNER_VARIANT and AWS_DEFAULT_REGION.
"""

from __future__ import annotations

import time

import boto3
from botocore.config import Config
from locust import User, task

from loadtests.openloop import (
    OpenLoopLane,
    SearchShape,
    install,
    load_payloads,
    load_runtime_plan,
)

PLAN = load_runtime_plan()
PAYLOADS = load_payloads(PLAN)
install(PLAN, PAYLOADS)

__all__ = ["SageMakerRuntimeUser", "SearchShape"]


class SageMakerRuntimeUser(OpenLoopLane, User):
    plan = PLAN
    payloads = PAYLOADS

    def on_start(self) -> None:
        target = PLAN["target"]
        timeout = PLAN["request_timeout_s"]
        self.endpoint = target["endpoint"]
        self.variant = target.get("variant")
        self.runtime = boto3.session.Session(region_name=target.get("region")).client(
            "sagemaker-runtime",
            config=Config(max_pool_connections=PLAN["max_in_flight"],
                          retries={"mode": "standard", "total_max_attempts": 1},
                          connect_timeout=timeout, read_timeout=timeout),
        )

    @task
    def lanes(self) -> None:
        self.run_lanes()

    def invoke(self, tag: tuple[int, float, float, int]) -> None:
        start = time.perf_counter()
        length, error = 0, None
        payload = PAYLOADS.payloads[tag[3]]
        kwargs = {"EndpointName": self.endpoint, "ContentType": payload.content_type,
                  "Body": payload.body}
        if self.variant:
            kwargs["TargetVariant"] = self.variant
        try:
            response = self.runtime.invoke_endpoint(**kwargs)
            length = len(response["Body"].read())
        except Exception as exc:  # every failure is a measured error
            error = exc
        self.environment.events.request.fire(
            request_type="InvokeEndpoint", name=self.endpoint,
            response_time=(time.perf_counter() - start) * 1000.0, response_length=length,
            response=None, context={"tuner": tag}, exception=error)
