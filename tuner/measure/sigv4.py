"""SigV4 signing of SageMaker InvokeEndpoint requests, for a fast HTTP client.

boto3 inside Locust manages ~550 requests/s per core; most of that is boto3, not HTTP. The
fast path signs the request with botocore's own SigV4 signer (credentials from the standard
chain, refreshed when they expire) and sends it with Locust's FastHttpUser. The payload is
the same for every request, so one signature serves every request within the same second
(SigV4 signs to the second).
The runtime URL is resolved exactly as boto3 resolves it (honouring $AWS_ENDPOINT_URL and
$AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME).

Imports only botocore: usable inside the Locust process.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SIGNING_NAME = "sagemaker"


class _KnownPayloadSigV4(SigV4Auth):
    """botocore's SigV4 with the body's SHA-256 taken from the request's context (computed
    once per payload) instead of hashed again for every signature."""

    def payload(self, request: AWSRequest) -> str:
        known = request.context.get("payload_sha256")
        return known if known is not None else super().payload(request)


class InvokeSigner:
    """Signed headers for InvokeEndpoint calls sending one of `requests` ((body, content
    type) pairs, by index)."""

    def __init__(self, endpoint: str, variant: str | None, region: str,
                 requests: Sequence[tuple[bytes, str]],
                 session: botocore.session.Session | None = None) -> None:
        session = session or botocore.session.get_session()
        self.credentials = session.get_credentials()
        if self.credentials is None:
            raise RuntimeError("no AWS credentials found: set AWS_PROFILE or "
                               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        base = session.create_client("sagemaker-runtime", region_name=region).meta.endpoint_url
        # Verify TLS as boto3 does: the system's CAs, or $AWS_CA_BUNDLE / `ca_bundle`.
        self.ca_bundle: str | None = session.get_config_variable("ca_bundle")
        self.region = region
        self.bodies = [body for body, _ in requests]
        self.body_sha256 = [hashlib.sha256(body).hexdigest() for body in self.bodies]
        self.url = f"{base.rstrip('/')}/endpoints/{quote(endpoint, safe='')}/invocations"
        self.headers = [{"Content-Type": content_type, "Accept": "*/*"}
                        for _, content_type in requests]
        if variant:
            for headers in self.headers:
                headers["X-Amzn-SageMaker-Target-Variant"] = variant
        self._second = -1
        self._frozen: Any = None
        self._signed: dict[int, dict[str, str]] = {}

    @property
    def base_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def sign(self, index: int = 0) -> dict[str, str]:
        """Headers for one request sending payload `index` now: the payload's own
        headers, Authorization, X-Amz-Date and, if any, the token."""
        second = int(time.time())
        if second != self._second:
            # Once a second: freezing refreshable credentials checks their expiry (and
            # refreshes them ahead of it), which costs more than sending a request.
            self._frozen = self.credentials.get_frozen_credentials()
            self._second = second
            self._signed = {}
        signed = self._signed.get(index)
        if signed is None:
            request = AWSRequest(method="POST", url=self.url, data=self.bodies[index],
                                 headers=dict(self.headers[index]))
            request.context["payload_sha256"] = self.body_sha256[index]
            _KnownPayloadSigV4(self._frozen, SIGNING_NAME, self.region).add_auth(request)
            signed = self._signed[index] = dict(request.headers.items())
        return signed
