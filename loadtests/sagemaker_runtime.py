"""Locustfile: open-loop capacity search through the SageMaker runtime API (InvokeEndpoint).

The fast path: requests are signed with botocore's SigV4 signer (standard credential chain,
refreshed when they expire; $AWS_ENDPOINT_URL honoured) and sent by FastHttpUser, several
times faster per generator core than boto3 inside Locust (see benchmarks/generator.py;
`loadtests/sagemaker_boto3.py` is that slower path). The plan (endpoint, variant, region)
comes in through $TUNER_PLAN; on its own set TUNER_ENDPOINT, TUNER_VARIANT and
AWS_DEFAULT_REGION.
"""

from __future__ import annotations

from locust import FastHttpUser, task

from loadtests.openloop import (
    OpenLoopLane,
    SearchShape,
    install,
    load_payload,
    load_runtime_plan,
)
from tuner.sigv4 import InvokeSigner

PLAN = load_runtime_plan()
PAYLOAD = load_payload(PLAN)
SIGNER = InvokeSigner(PLAN["target"]["endpoint"], PLAN["target"].get("variant"),
                      PLAN["target"]["region"], PLAN["content_type"], PAYLOAD)
install(PLAN)

__all__ = ["SignedInvokeUser", "SearchShape"]


class SignedInvokeUser(OpenLoopLane, FastHttpUser):
    """One lane of arrivals sending SigV4-signed InvokeEndpoint calls over fast HTTP."""

    plan = PLAN
    host = SIGNER.base_url
    concurrency = PLAN["max_in_flight"]
    network_timeout = PLAN["request_timeout_s"]
    connection_timeout = PLAN["request_timeout_s"]

    def on_start(self) -> None:
        self.client.client.cookiejar = None  # the runtime API sets no cookies

    @task
    def lanes(self) -> None:
        self.run_lanes()

    def invoke(self, tag: tuple[int, float, float]) -> None:
        self.client.request("POST", SIGNER.path, data=PAYLOAD, headers=SIGNER.sign(),
                            name="InvokeEndpoint", context={"tuner": tag})
