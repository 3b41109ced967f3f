"""Locustfile: open-loop capacity search through the SageMaker runtime API (InvokeEndpoint).

The fast path: requests are signed with botocore's SigV4 signer (standard credential chain,
refreshed when they expire; $AWS_ENDPOINT_URL honoured) and sent by FastHttpUser, several
times faster per generator core than boto3 inside Locust (see benchmarks/generator.py;
`loadtests/sagemaker_boto3.py` is that slower path). The plan (endpoint, variant, region)
comes in through $TUNER_PLAN; on its own set TUNER_ENDPOINT, TUNER_VARIANT and
AWS_DEFAULT_REGION.
"""

from __future__ import annotations

import gevent.ssl
from locust import FastHttpUser, task

from loadtests.fastpost import FastPost
from loadtests.openloop import (
    OpenLoopLane,
    SearchShape,
    install,
    load_payloads,
    load_runtime_plan,
)
from tuner.measure.sigv4 import InvokeSigner

PLAN = load_runtime_plan()
PAYLOADS = load_payloads(PLAN)
SIGNER = InvokeSigner(PLAN["target"]["endpoint"], PLAN["target"].get("variant"),
                      PLAN["target"]["region"],
                      [(p.body, p.content_type) for p in PAYLOADS.payloads])
install(PLAN, PAYLOADS)

__all__ = ["SignedInvokeUser", "SearchShape"]


def verified_tls_context(cafile: str | None = None) -> gevent.ssl.SSLContext:
    """TLS verified as boto3 verifies it: against $AWS_CA_BUNDLE (or the profile's
    `ca_bundle`) when set, otherwise against the CA bundle geventhttpclient passes in."""
    return gevent.ssl.create_default_context(cafile=SIGNER.ca_bundle or cafile)


class SignedInvokeUser(OpenLoopLane, FastHttpUser):
    """One lane of arrivals sending SigV4-signed InvokeEndpoint calls over fast HTTP."""

    plan = PLAN
    payloads = PAYLOADS
    host = SIGNER.base_url
    concurrency = PLAN["max_in_flight"]
    network_timeout = PLAN["request_timeout_s"]
    connection_timeout = PLAN["request_timeout_s"]
    # Signed requests travel over verified TLS only, with the CAs boto3 would trust.
    insecure = False
    ssl_context_factory = staticmethod(verified_tls_context)

    def on_start(self) -> None:
        self.post = FastPost(self, SIGNER.url, name="InvokeEndpoint")

    @task
    def lanes(self) -> None:
        self.run_lanes()

    def invoke(self, tag: tuple[int, float, float, int]) -> None:
        index = tag[3]
        self.post.send({"tuner": tag}, SIGNER.bodies[index], SIGNER.sign(index))
