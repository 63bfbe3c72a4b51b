"""TLS, client certificates and basic auth from --web.config.file, through the real command line,
with real clients: requests trusting a CA made for the test, and Prometheus scraping over https."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from tests.support.procs import REPO, Proc, free_port, require_binary, value, wait_until
from tests.support.tls import CertificateAuthority, Issued

NO_COLLECTORS = ("--no-collector.host", "--no-collector.gpu", "--no-collector.redis_state")


class Pki:
    def __init__(self, directory: Path) -> None:
        self.ca = CertificateAuthority(directory / "ca")
        self.server = self.ca.server()
        self.client = self.ca.issue("agent-client", dns=("agent.example",), client=True)
        self.other_san = self.ca.issue("other-client", dns=("other.example",), client=True)
        self.stranger = CertificateAuthority(directory / "stranger").issue("x", client=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def web_config(tmp_path: Path, pki: Pki, extra: str = "") -> Path:
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {pki.server.cert}\n"
                    f"  key_file: {pki.server.key}\n{extra}")
    return path


def session(pki: Pki, cert: Issued | None = None, auth: tuple[str, str] | None = None
            ) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
    s.verify = str(pki.ca.cert)
    if cert is not None:
        s.cert = (str(cert.cert), str(cert.key))
    if auth is not None:
        s.auth = auth
    return s


def test_tls_serves_a_client_that_trusts_the_ca_and_nobody_in_plain_http(
        redis_url, start_exporter, pki, tmp_path):
    trusting = session(pki)
    exporter = start_exporter(redis_url, *NO_COLLECTORS, "--web.config.file",
                              str(web_config(tmp_path, pki)), https=True, session=trusting)
    assert trusting.get(exporter.url + "/metrics", timeout=10).status_code == 200
    assert trusting.head(exporter.url + "/", timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{exporter.port}/healthz", timeout=10)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(exporter.url + "/healthz", timeout=10)  # the system CAs do not know ours
    assert value(exporter.samples(), "agent_exporter_http_requests_rejected_total",
                 reason="tls_handshake") >= 1
    assert f"listening on 127.0.0.1:{exporter.port} (https)" in exporter.proc.log()


def test_client_certificates_must_come_from_the_ca_and_carry_an_allowed_san(
        redis_url, start_exporter, pki, tmp_path):
    web = web_config(tmp_path, pki, f"  client_auth_type: RequireAndVerifyClientCert\n"
                                    f"  client_ca_file: {pki.ca.cert}\n"
                                    "  client_allowed_sans: [agent.example]\n")
    allowed = session(pki, pki.client)
    exporter = start_exporter(redis_url, *NO_COLLECTORS, "--web.config.file", str(web),
                              https=True, session=allowed)
    assert allowed.get(exporter.url + "/metrics", timeout=10).status_code == 200
    for refused in (session(pki), session(pki, pki.stranger), session(pki, pki.other_san)):
        with pytest.raises(requests.ConnectionError):
            refused.get(exporter.url + "/healthz", timeout=10)
    assert value(exporter.samples(), "agent_exporter_http_requests_rejected_total",
                 reason="tls_handshake") >= 3


def test_basic_auth_over_tls_follows_the_file_without_a_restart(redis_url, start_exporter, pki,
                                                                 tmp_path):
    web = web_config(tmp_path, pki, f"basic_auth_users:\n  alice: '{hashed('alice-pw')}'\n")
    alice = session(pki, auth=("alice", "alice-pw"))
    exporter = start_exporter(redis_url, *NO_COLLECTORS, "--web.config.file", str(web),
                              https=True, session=alice)
    anonymous, bob = session(pki), session(pki, auth=("bob", "bob-pw"))
    refused = anonymous.get(exporter.url + "/metrics", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="agent-exporter"'
    assert bob.get(exporter.url + "/metrics", timeout=10).status_code == 401

    web.write_text(web.read_text() + f"  bob: '{hashed('bob-pw')}'\n")
    assert bob.get(exporter.url + "/metrics", timeout=10).status_code == 200
    assert "web config: reloaded" in exporter.proc.log()


@pytest.mark.integration
def test_a_bad_web_config_stops_start_up_naming_the_key(tmp_path, pki):
    tls_with_request_cert = (f"tls_server_config:\n  cert_file: {pki.server.cert}\n"
                             f"  key_file: {pki.server.key}\n"
                             "  client_auth_type: RequestClientCert\n")
    cases = [
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
         "tls_server_config.cert_file: cannot read"),
        (tls_with_request_cert, "tls_server_config.client_auth_type: "),
        ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice: not a bcrypt hash"),
    ]
    for text, expected in cases:
        path = tmp_path / "web.yml"
        path.write_text(text)
        result = subprocess.run([sys.executable, "-m", "exporter", "--web.config.file", str(path)],
                                capture_output=True, text=True, timeout=30, cwd=REPO, check=False)
        assert result.returncode == 2, result.stderr
        assert f"web config file {path}: {expected}" in result.stderr


def test_prometheus_scrapes_over_https_with_a_client_certificate_and_basic_auth(
        redis_url, start_exporter, pki, tmp_path):
    web = web_config(tmp_path, pki, f"  client_auth_type: RequireAndVerifyClientCert\n"
                                    f"  client_ca_file: {pki.ca.cert}\n"
                                    f"basic_auth_users:\n  prometheus: '{hashed('scrape-pw')}'\n")
    exporter = start_exporter(redis_url, *NO_COLLECTORS, "--web.config.file", str(web),
                              https=True,
                              session=session(pki, pki.client, auth=("prometheus", "scrape-pw")))
    password_file = tmp_path / "scrape-password"
    password_file.write_text("scrape-pw")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{
            "job_name": "agent-exporter",
            "scheme": "https",
            "tls_config": {"ca_file": str(pki.ca.cert), "cert_file": str(pki.client.cert),
                           "key_file": str(pki.client.key)},
            "basic_auth": {"username": "prometheus", "password_file": str(password_file)},
            "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
        }],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prometheus = Proc([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{port}"], tmp_path / "prometheus.log")
    try:
        def scraped() -> bool:
            if not prometheus.alive():
                raise AssertionError(f"prometheus exited:\n{prometheus.log()}")
            targets = requests.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()
            active = targets["data"]["activeTargets"]
            return bool(active) and active[0]["health"] == "up" and active[0]

        target = wait_until(scraped, timeout=60, message="Prometheus to scrape over https")
        assert target["scrapeUrl"] == f"https://127.0.0.1:{exporter.port}/metrics"
        result = requests.get(f"http://127.0.0.1:{port}/api/v1/query", timeout=5,
                              params={"query": "agent_exporter_build_info"}).json()
        assert result["data"]["result"], "samples from the exporter arrived"
    finally:
        prometheus.stop()
