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
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SIGNING_NAME = "sagemaker"


class _TemplateSigV4(SigV4Auth):
    """botocore's SigV4, keeping the canonical request it signed (the template of this
    second's other payloads)."""

    canonical: str = ""

    def canonical_request(self, request: AWSRequest) -> str:
        self.canonical = super().canonical_request(request)
        return self.canonical


@dataclass(frozen=True)
class _Template:
    """One second's full botocore signature of payload 0, from which the others derive."""

    auth: _TemplateSigV4
    request: AWSRequest  # its context holds the second's timestamp
    lines: tuple[str, ...]  # the canonical request, line by line
    content_type_line: int  # which line is `content-type:...`
    headers: dict[str, str]
    authorization_prefix: str  # "AWS4-HMAC-SHA256 Credential=..., Signature="


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
        self._template: _Template | None = None

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
            self._template = None
        signed = self._signed.get(index)
        if signed is None:
            signed = self._signed[index] = self._derive(index)
        return signed

    def _full_signature(self) -> _Template:
        """Payload 0 signed by botocore, start to end, kept as this second's template."""
        auth = _TemplateSigV4(self._frozen, SIGNING_NAME, self.region)
        request = AWSRequest(method="POST", url=self.url, data=self.bodies[0],
                             headers=dict(self.headers[0]))
        auth.add_auth(request)
        lines = tuple(auth.canonical.split("\n"))
        headers = dict(request.headers.items())
        authorization = headers["Authorization"]
        return _Template(auth, request, lines,
                         next(i for i, line in enumerate(lines)
                              if line.startswith("content-type:")),
                         headers, authorization[:authorization.rindex("Signature=") + 10])

    def _derive(self, index: int) -> dict[str, str]:
        """Payload `index`'s headers: the template's canonical request with this payload's
        content type (normalised as botocore does) and body hash, signed with the same
        timestamp and scope."""
        if self._template is None:
            self._template = self._full_signature()
        template = self._template
        if index == 0:
            return template.headers
        lines = list(template.lines)
        content_type = self.headers[index]["Content-Type"]
        lines[template.content_type_line] = "content-type:" + " ".join(content_type.split())
        lines[-1] = self.body_sha256[index]
        string_to_sign = template.auth.string_to_sign(template.request, "\n".join(lines))
        signature = template.auth.signature(string_to_sign, template.request)
        return {**template.headers, "Content-Type": content_type,
                "Authorization": template.authorization_prefix + signature}
