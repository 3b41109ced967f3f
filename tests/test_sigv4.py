"""Signed InvokeEndpoint requests carry a valid SigV4 Authorization header."""

import re

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tuner.sigv4 import InvokeSigner

KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"


def signer(monkeypatch, endpoint_url=None):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    if endpoint_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    return InvokeSigner("my-endpoint", "AllTraffic", "eu-west-1", "application/json",
                        b'{"x": 1}', session=botocore.session.Session())


def test_signature_verifies_against_botocore_with_known_credentials(monkeypatch):
    s = signer(monkeypatch)
    headers = s.sign()
    assert s.url == ("https://runtime.sagemaker.eu-west-1.amazonaws.com"
                     "/endpoints/my-endpoint/invocations")
    auth = headers["Authorization"]
    match = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=(\S+), SignedHeaders=(\S+), "
                         r"Signature=([0-9a-f]{64})", auth)
    assert match, auth
    credential, signed_headers, signature = match.groups()
    date = headers["X-Amz-Date"]
    assert credential == f"{KEY}/{date[:8]}/eu-west-1/sagemaker/aws4_request"
    assert headers["X-Amz-Security-Token"] == TOKEN
    assert "x-amzn-sagemaker-target-variant" in signed_headers.split(";")

    # Recompute independently with botocore from the known credentials.
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    request = AWSRequest(method="POST", url=s.url, data=b'{"x": 1}', headers=unsigned)
    request.context["timestamp"] = date
    verifier = SigV4Auth(Credentials(KEY, SECRET, TOKEN), "sagemaker", "eu-west-1")
    expected = verifier.signature(
        verifier.string_to_sign(request, verifier.canonical_request(request)), request)
    assert signature == expected
    wrong = SigV4Auth(Credentials(KEY, "not-the-secret", TOKEN), "sagemaker", "eu-west-1")
    assert signature != wrong.signature(
        wrong.string_to_sign(request, wrong.canonical_request(request)), request)


def test_endpoint_url_is_honoured_and_signatures_are_reused_within_a_second(monkeypatch):
    s = signer(monkeypatch, endpoint_url="http://127.0.0.1:9999")
    assert s.base_url == "http://127.0.0.1:9999"
    assert s.path == "/endpoints/my-endpoint/invocations"
    first = s.sign()
    assert s.sign() is first or s.sign()["X-Amz-Date"] != first["X-Amz-Date"]
