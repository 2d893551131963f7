"""HTTPS terminated by BentoML itself, with the `mlgitops serve` options of docs/serving.md."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shlex
import ssl
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from helpers import PROJECT_ROOT
from live_server import start_server, wait_ready

LOOPBACK = "127.0.0.1"
TLS_OPTIONS = ["--ssl-certfile", "--ssl-keyfile"]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, its own issuer, and its key: PEM files in
    `folder` (the key readable by the owner only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = dt.datetime.now(dt.UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
            critical=False,
        )
        # Its own CA, so that a client can trust exactly this certificate and nothing else.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


SERVING_PAGE = PROJECT_ROOT / "docs" / "serving.md"


def documented_tls_command() -> list[str]:
    """The `mlgitops serve` line with TLS options in the "TLS" section of docs/serving.md."""
    page = SERVING_PAGE.read_text(encoding="utf-8")
    section = page.split("\n## TLS\n", 1)[1].split("\n## ", 1)[0]
    lines = [
        line.removeprefix("$ ")
        for line in section.splitlines()
        if line.startswith("$ mlgitops serve ") and "--ssl-" in line
    ]
    assert len(lines) == 1, f"expected one `mlgitops serve` line with TLS options, got {lines}"
    return shlex.split(lines[0])


@pytest.mark.slow
def test_https_with_the_documented_options_and_no_plain_http(home, tmp_path):
    # Given a throwaway certificate for 127.0.0.1 and the documented TLS command (its cert.pem
    # and key.pem replaced by the generated files), when the service is served with it, then
    # it presents that certificate; a prediction over HTTPS that trusts only this certificate
    # is answered; a client trusting only the system CAs refuses it; and plain HTTP on the
    # same port gets no HTTP answer at all.
    command = documented_tls_command()
    assert command[:2] == ["mlgitops", "serve"], f"docs/serving.md serves with {command[:2]}"
    options = command[2:]
    assert [arg for arg in options if arg.startswith("--")] == TLS_OPTIONS, options
    cert_file, key_file = self_signed_certificate(tmp_path / "tls")
    files = {"cert.pem": str(cert_file), "key.pem": str(key_file)}
    assert set(files) <= set(options), f"docs/serving.md names other files: {options}"
    trust_this_only = ssl.create_default_context(cafile=cert_file)
    stored = yaml.safe_load((home.model_dir() / "model.yaml").read_text())["metadata"]

    server = start_server(home, extra_args=[files.get(arg, arg) for arg in options])
    assert server.url.startswith("https://"), server.url
    wait_ready(server, verify=trust_this_only)
    try:
        port = httpx.URL(server.url).port
        served = ssl.get_server_certificate((LOOPBACK, port))
        assert x509.load_pem_x509_certificate(served.encode()) == x509.load_pem_x509_certificate(
            cert_file.read_bytes()
        ), "the server presents another certificate"

        response = httpx.post(
            f"{server.url}/predict",
            json={"records": [stored["example"]]},
            headers={"Authorization": f"Bearer {home.keys[0]}"},
            verify=trust_this_only,
            timeout=60,
        )
        assert response.status_code == 200, response.text
        (answer,) = response.json()
        assert answer["prediction"] is not None, response.text
        # Probabilities are keyed by the classes as text (any target dtype); none for a regressor.
        assert set(answer["probabilities"] or ()) == set(stored["classes"] or ()), response.text

        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{server.url}/livez", timeout=10)

        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            httpx.get(f"http://{LOOPBACK}:{port}/livez", timeout=10)
        # The refused plain request did not take the server down.
        assert httpx.get(f"{server.url}/livez", verify=trust_this_only).status_code == 200
    finally:
        server.stop()


def test_every_tls_mention_in_the_docs_names_the_tested_options():
    # Given the documented TLS command (the one the test above serves with), then every other
    # page that mentions a TLS option spells the same options with the same files, and
    # SECURITY.md names the options.
    options = " ".join(documented_tls_command()[2:])
    pages = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
    for page in pages:
        text = " ".join(page.read_text(encoding="utf-8").split())
        if "--ssl-certfile" in text:
            assert options in text, f"{page.name} mentions TLS but not `{options}`"
    security = (PROJECT_ROOT / "SECURITY.md").read_text()
    assert "/".join(TLS_OPTIONS) in security, f"SECURITY.md does not name {TLS_OPTIONS}"
