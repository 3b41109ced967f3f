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

import time
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SIGNING_NAME = "sagemaker"


class InvokeSigner:
    def __init__(self, endpoint: str, variant: str | None, region: str, content_type: str,
                 payload: bytes, session: botocore.session.Session | None = None) -> None:
        session = session or botocore.session.get_session()
        self.credentials = session.get_credentials()
        if self.credentials is None:
            raise RuntimeError("no AWS credentials found: set AWS_PROFILE or "
                               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        base = session.create_client("sagemaker-runtime", region_name=region).meta.endpoint_url
        # Verify TLS as boto3 does: the system's CAs, or $AWS_CA_BUNDLE / `ca_bundle`.
        self.ca_bundle: str | None = session.get_config_variable("ca_bundle")
        self.region = region
        self.payload = payload
        self.url = f"{base.rstrip('/')}/endpoints/{quote(endpoint, safe='')}/invocations"
        self.headers = {"Content-Type": content_type, "Accept": "*/*"}
        if variant:
            self.headers["X-Amzn-SageMaker-Target-Variant"] = variant
        self._second = -1
        self._signed: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def sign(self) -> dict[str, str]:
        """Headers for one request now: Authorization, X-Amz-Date and, if any, the token."""
        second = int(time.time())
        if second == self._second:
            return self._signed
        # Once a second: freezing refreshable credentials checks their expiry (and refreshes
        # them ahead of it), which costs more than sending a request.
        frozen = self.credentials.get_frozen_credentials()
        request = AWSRequest(method="POST", url=self.url, data=self.payload,
                             headers=dict(self.headers))
        SigV4Auth(frozen, SIGNING_NAME, self.region).add_auth(request)
        self._second = second
        self._signed = dict(request.headers.items())
        return self._signed
