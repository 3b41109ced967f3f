"""Signed InvokeEndpoint requests carry a valid SigV4 Authorization header."""

import re

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from tuner.measure.sigv4 import InvokeSigner

KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"


def signer(monkeypatch, endpoint_url=None):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    if endpoint_url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    return InvokeSigner("my-endpoint", "AllTraffic", "eu-west-1",
                        [(b'{"x": 1}', "application/json"), (b"1,2\n", "text/csv")],
                        session=botocore.session.Session())


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


def test_each_payload_is_signed_with_its_own_body_and_content_type(monkeypatch):
    s = signer(monkeypatch)
    csv_headers = s.sign(1)
    assert csv_headers["Content-Type"] == "text/csv"
    assert s.sign(0)["Content-Type"] == "application/json"
    unsigned = {k: v for k, v in csv_headers.items() if k != "Authorization"}
    request = AWSRequest(method="POST", url=s.url, data=b"1,2\n", headers=unsigned)
    request.context["timestamp"] = csv_headers["X-Amz-Date"]
    verifier = SigV4Auth(Credentials(KEY, SECRET, TOKEN), "sagemaker", "eu-west-1")
    expected = verifier.signature(
        verifier.string_to_sign(request, verifier.canonical_request(request)), request)
    assert csv_headers["Authorization"].endswith(f"Signature={expected}")


def test_endpoint_url_is_honoured_and_signatures_are_reused_within_a_second(monkeypatch):
    s = signer(monkeypatch, endpoint_url="http://127.0.0.1:9999")
    assert s.base_url == "http://127.0.0.1:9999"
    assert s.url == "http://127.0.0.1:9999/endpoints/my-endpoint/invocations"
    clock = iter([1000.2, 1000.9, 1001.0])
    monkeypatch.setattr("tuner.measure.sigv4.time.time", lambda: next(clock))
    first = s.sign()
    assert s.sign() is first  # the same second: the same headers
    assert s.sign() is not first  # the next second: signed again


class RotatingSession:
    """A botocore session whose credentials change on every refresh, as a role's do."""

    def __init__(self) -> None:
        self.real = botocore.session.Session()
        self.refreshes = 0

    def get_credentials(self):
        return self

    def get_frozen_credentials(self):
        self.refreshes += 1
        return ReadOnlyCredentials(f"AKID{self.refreshes}", SECRET, TOKEN)

    def create_client(self, *args, **kwargs):
        return self.real.create_client(*args, **kwargs)

    def get_config_variable(self, name):
        return self.real.get_config_variable(name)


def test_credentials_are_read_again_each_second_and_new_keys_sign(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    session = RotatingSession()
    s = InvokeSigner("e", None, "eu-west-1", [(b"{}", "application/json")], session=session)
    clock = iter([1000.2, 1000.7, 1001.1])
    monkeypatch.setattr("tuner.measure.sigv4.time.time", lambda: next(clock))
    first, same_second, next_second = s.sign(), s.sign(), s.sign()
    assert same_second is first and session.refreshes == 2
    assert "Credential=AKID1/" in first["Authorization"]
    assert "Credential=AKID2/" in next_second["Authorization"]


def test_every_payloads_derived_signature_is_botocores_own(monkeypatch):
    """Payloads after the first are signed from the second's template: each must carry
    exactly the signature botocore computes for its own body and content type."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    requests = [(b'{"x": 1}', "application/json"), (b"", "application/json"),
                (b"1,2\n3,4\n", "text/csv;  charset=utf-8"), (b"\x89PNG\r\n", "image/png"),
                (b'{"x": 1}', "application/jsonlines")]
    s = InvokeSigner("my-endpoint", "AllTraffic", "eu-west-1", requests,
                     session=botocore.session.Session())
    monkeypatch.setattr("tuner.measure.sigv4.time.time", lambda: 1_700_000_000.5)
    signed = [s.sign(i) for i in range(len(requests))]
    assert len({h["Authorization"] for h in signed}) == len(requests)
    verifier = SigV4Auth(Credentials(KEY, SECRET, TOKEN), "sagemaker", "eu-west-1")
    for (body, content_type), headers in zip(requests, signed, strict=True):
        assert headers["Content-Type"] == content_type
        unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
        request = AWSRequest(method="POST", url=s.url, data=body, headers=unsigned)
        request.context["timestamp"] = headers["X-Amz-Date"]
        expected = verifier.signature(
            verifier.string_to_sign(request, verifier.canonical_request(request)), request)
        assert headers["Authorization"].endswith(f"Signature={expected}"), content_type
