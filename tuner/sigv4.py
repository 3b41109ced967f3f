"""SigV4 signing of SageMaker InvokeEndpoint requests, for a fast HTTP client.

boto3 inside Locust manages ~550 requests/s per core; most of that is boto3, not HTTP. The
fast path signs the request with botocore's own SigV4 signer (credentials from the standard
chain, refreshed when they expire) and sends it with Locust's FastHttpUser. The payload is
the same for every request, so one signature serves every request within the same second.
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
        self.region = region
        self.payload = payload
        self.url = f"{base.rstrip('/')}/endpoints/{quote(endpoint, safe='')}/invocations"
        self.headers = {"Content-Type": content_type, "Accept": "*/*"}
        if variant:
            self.headers["X-Amzn-SageMaker-Target-Variant"] = variant
        self._second = -1
        self._key: tuple | None = None
        self._signed: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def sign(self) -> dict[str, str]:
        """Headers for one request now: Authorization, X-Amz-Date and, if any, the token."""
        frozen = self.credentials.get_frozen_credentials()  # refreshes expiring credentials
        second = int(time.time())
        key = (frozen.access_key, frozen.secret_key, frozen.token)
        if second == self._second and key == self._key:
            return self._signed
        request = AWSRequest(method="POST", url=self.url, data=self.payload,
                             headers=dict(self.headers))
        SigV4Auth(frozen, SIGNING_NAME, self.region).add_auth(request)
        self._second, self._key = second, key
        self._signed = dict(request.headers.items())
        return self._signed
