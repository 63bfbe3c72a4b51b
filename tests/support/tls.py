"""TLS for the tests: a throw-away CA, a server and a client certificate signed by it, and a
real redis-server that speaks only TLS and wants the client's certificate."""
from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.procs import RedisServer, free_port


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
           issuer_key: ec.EllipticCurvePrivateKey, ca: bool, usage: list[x509.ObjectIdentifier],
           path: Path) -> Path:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    path.write_bytes(builder.sign(issuer_key, hashes.SHA256())
                     .public_bytes(serialization.Encoding.PEM))
    return path


def make_certificates(directory: Path) -> Certificates:
    """A CA and, signed by it, certificates for 127.0.0.1/localhost: a server's and a client's."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    return Certificates(
        ca=_issue("test CA", ca_key, "test CA", ca_key, True, [], directory / "ca.pem"),
        server_cert=_issue("redis", server_key, "test CA", ca_key, False,  # replicas are clients
                           [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                           directory / "server.pem"),
        server_key=_write_key(server_key, directory / "server.key"),
        client_cert=_issue("agent-exporter", client_key, "test CA", ca_key, False,
                           [ExtendedKeyUsageOID.CLIENT_AUTH], directory / "client.pem"),
        client_key=_write_key(client_key, directory / "client.key"))


def client_options(certificates: Certificates) -> dict[str, str]:
    """The client's side, as the URL's options: trust the CA, show the client certificate."""
    return {"ssl_ca_certs": str(certificates.ca), "ssl_certfile": str(certificates.client_cert),
            "ssl_keyfile": str(certificates.client_key)}


def server_settings(certificates: Certificates) -> dict[str, str]:
    """The server's side (redis-server and redis-sentinel): TLS only, client certificates
    required, replication and Sentinel's own links over TLS too."""
    return {"tls-cert-file": str(certificates.server_cert),
            "tls-key-file": str(certificates.server_key),
            "tls-ca-cert-file": str(certificates.ca), "tls-auth-clients": "yes",
            "tls-replication": "yes"}


class TlsRedisServer(RedisServer):
    """redis-server with its plain port closed and a TLS port that asks for a client
    certificate; `url` is the rediss:// URL the exporter is given, with the client's files."""

    def __init__(self, workdir: Path, certificates: Certificates, extra: Sequence[str] = ()) -> None:
        port = free_port()
        flags = [flag for name, setting in server_settings(certificates).items()
                 for flag in (f"--{name}", setting)]
        super().__init__(workdir, ["--port", "0", "--tls-port", str(port), *flags, *extra],
                         port=port)
        self.url = f"rediss://127.0.0.1:{port}/0?{urlencode(client_options(certificates))}"
