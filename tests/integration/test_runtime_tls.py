"""The signed runtime path verifies TLS as boto3 does: the system's CAs, or $AWS_CA_BUNDLE.

Real Locust sends signed InvokeEndpoint calls to the bundled model server over HTTPS with a
self-signed certificate, once untrusted and once trusted through AWS_CA_BUNDLE.
"""

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tuner.config import build_config
from tuner.demo.servers import model_server
from tuner.measure.loadtest import run_load_test

pytestmark = pytest.mark.integration


def self_signed_certificate(directory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    with model_server(slots=4, service_ms=5.0, tls=(cert, key)) as server:
        yield server, cert


def signed_run(server, directory, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    config = build_config({}, {"endpoint": "tls-ep", "sla_latency_ms": 500, "start_rps": 20,
                               "max_rps": 20, "max_test_seconds": 10, "min_step_seconds": 3,
                               "max_step_seconds": 3, "region": "us-east-1"})
    return run_load_test(config, directory, region="us-east-1")


def test_an_untrusted_certificate_fails_every_request(https_server, tmp_path, monkeypatch):
    server, _ = https_server
    output = signed_run(server, tmp_path, monkeypatch)
    assert len(output.samples) >= 20
    assert not output.samples["ok"].any()
    assert "CERTIFICATE_VERIFY_FAILED" in (tmp_path / "locust_failures.csv").read_text()


def test_a_certificate_trusted_through_aws_ca_bundle_passes(https_server, tmp_path,
                                                            monkeypatch):
    server, cert = https_server
    monkeypatch.setenv("AWS_CA_BUNDLE", cert)
    output = signed_run(server, tmp_path, monkeypatch)
    assert len(output.samples) >= 40
    assert output.samples["ok"].all()
