"""A real local HTTPS server for client metadata documents, with a throw-away CA made at test time.

`make_ca(directory)` writes a CA and a server certificate for `localhost`/127.0.0.1/::1 signed by it;
`serving_documents(directory)` starts uvicorn with that certificate on a free loopback port, in a thread of the
test process, and yields a `DocumentServer`: publish a document (a path → JSON body, content type, optional
Cache-Control, status and extra headers), read its `url(path)` and `ca_file`, and see how often each path was
fetched. Nothing is trusted outside the tests: only a client given `ca_file` accepts the certificate.
"""

import datetime
import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers.processes import free_port


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def make_ca(directory: Path) -> Certificates:
    """A CA (ca.pem) and a server certificate for localhost, 127.0.0.1 and ::1 (server.pem, server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("muster test CA"))
        .issuer_name(_name("muster test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    certificates = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    certificates.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certificates.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(certificates.key_file, server_key)
    return certificates


@dataclass
class Document:
    body: bytes
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class DocumentServer:
    """The published documents, by path; the ASGI app serves them and counts the requests."""

    def __init__(self, certificates: Certificates) -> None:
        self.certificates = certificates
        self.port = 0
        self.documents: dict[str, Document] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def ca_file(self) -> str:
        return str(self.certificates.ca_file)

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def publish(
        self,
        path: str,
        document: Any,
        *,
        content_type: str = "application/json",
        cache_control: str | None = None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve `document` (JSON-encoded unless bytes) at `path`; returns its URL."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        extra = dict(headers or {})
        if cache_control:
            extra["cache-control"] = cache_control
        with self.lock:
            self.documents[path] = Document(body, content_type, status, extra)
        return self.url(path)

    def fetches(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)

    def clear(self) -> None:
        with self.lock:
            self.documents.clear()
            self.hits.clear()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            document = self.documents.get(path)
        if document is None:
            document = Document(b'{"error": "not found"}', status=404)
        headers = [(b"content-type", document.content_type.encode())]
        headers += [(name.lower().encode(), value.encode()) for name, value in document.headers.items()]
        headers.append((b"content-length", str(len(document.body)).encode()))
        await send({"type": "http.response.start", "status": document.status, "headers": headers})
        await send({"type": "http.response.body", "body": document.body})


@contextmanager
def serving_documents(directory: Path) -> Iterator[DocumentServer]:
    """A `DocumentServer` over real HTTPS on 127.0.0.1 (uvicorn in a thread), until the block ends."""
    documents = DocumentServer(make_ca(directory))
    documents.port = free_port()
    config = uvicorn.Config(
        documents,
        host="127.0.0.1",
        port=documents.port,
        ssl_certfile=str(documents.certificates.cert_file),
        ssl_keyfile=str(documents.certificates.key_file),
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cimd-documents", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "the document server stopped before it started"
            assert time.monotonic() < deadline, "the document server did not start within 10 s"
            time.sleep(0.02)
        yield documents
    finally:
        server.should_exit = True
        thread.join(timeout=10)
