"""Redis over TLS for the tests: certificates from a throw-away CA, and a real redis-server that
speaks only TLS and wants a client certificate."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from tests.support.procs import RedisServer, free_port
from tests.support.tls import CertificateAuthority, Issued


@dataclass(frozen=True)
class RedisTls:
    """A CA, the servers' certificate (127.0.0.1, localhost) and a client's."""

    ca: Path
    server: Issued
    client: Issued

    @classmethod
    def make(cls, directory: Path) -> RedisTls:
        authority = CertificateAuthority(directory)
        return cls(authority.cert, authority.server(),
                   authority.issue("agent-exporter", client=True))

    def client_options(self) -> dict[str, str]:
        """The client's side, as URL options: trust the CA, show the client certificate."""
        return {"ssl_ca_certs": str(self.ca), "ssl_certfile": str(self.client.cert),
                "ssl_keyfile": str(self.client.key)}

    def server_settings(self) -> dict[str, str]:
        """The servers' side (redis-server and redis-sentinel): TLS only, client certificates
        required; replication and Sentinel's own links over TLS too, with the client's
        certificate where a server connects to another."""
        return {"tls-cert-file": str(self.server.cert), "tls-key-file": str(self.server.key),
                "tls-client-cert-file": str(self.client.cert),
                "tls-client-key-file": str(self.client.key),
                "tls-ca-cert-file": str(self.ca), "tls-auth-clients": "yes",
                "tls-replication": "yes"}


class TlsRedisServer(RedisServer):
    """redis-server with its plain port closed and a TLS port that asks for a client
    certificate; `url` is the rediss:// URL the exporter is given, with the client's files."""

    def __init__(self, workdir: Path, tls: RedisTls, extra: Sequence[str] = ()) -> None:
        port = free_port()
        flags = [flag for name, setting in tls.server_settings().items()
                 for flag in (f"--{name}", setting)]
        super().__init__(workdir, ["--port", "0", "--tls-port", str(port), *flags, *extra],
                         port=port)
        self.url = f"rediss://127.0.0.1:{port}/0?{urlencode(tls.client_options())}"
