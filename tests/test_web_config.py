"""The web config file (exporter-toolkit format): what it accepts, what it refuses and names, and
how a running exporter follows changes to it."""
from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import bcrypt
import pytest

from exporter.config import ConfigError
from exporter.web_config import (
    CIPHER_SUITES,
    InvalidWebConfig,
    WebConfigFile,
    go_duration,
    load,
)
from tests.support.procs import REPO, require_binary
from tests.support.tls import CertificateAuthority

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    ca.server()
    return ca


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


def tls_section(pki: CertificateAuthority, extra: str = "") -> str:
    d = pki.directory
    return (f"tls_server_config:\n  cert_file: {d / 'server.crt'}\n"
            f"  key_file: {d / 'server.key'}\n{extra}")


def test_an_empty_file_serves_plain_http_without_auth(tmp_path):
    config = load(write(tmp_path, ""))
    assert config.tls is None and not config.users and config.headers == ()


def test_tls_basic_auth_headers_and_rate_limit_are_read(tmp_path, pki):
    config = load(write(tmp_path, tls_section(pki, (
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.cert}\n"
        "  min_version: TLS13\n  client_allowed_sans: [agent.example]\n")) + (
        f"basic_auth_users:\n  alice: '{HASH}'\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-XSS-Protection: ''\n"
        'rate_limit:\n  interval: 250ms\n  burst: 5\n')))
    assert config.tls is not None
    assert config.tls.verify_mode == ssl.CERT_REQUIRED and config.client_cert_required
    assert config.tls.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.client_allowed_sans == frozenset({"agent.example"})
    assert config.users == {"alice": HASH.encode()}
    assert config.headers == (("X-Frame-Options", "deny"),)  # blank: unset, as in the toolkit
    assert (config.rate_limit.interval, config.rate_limit.burst) == (0.25, 5)


def test_relative_paths_are_resolved_against_the_files_directory(tmp_path, pki):
    os.symlink(pki.directory, tmp_path / "certs")
    config = load(write(tmp_path, "tls_server_config:\n  cert_file: certs/server.crt\n"
                                  "  key_file: certs/server.key\n"))
    assert config.tls is not None
    assert config.files == (str(tmp_path / "certs/server.crt"), str(tmp_path / "certs/server.key"))


def test_cipher_suites_take_gos_names(tmp_path, pki):
    config = load(write(tmp_path, tls_section(pki, (
        "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n"))))
    assert config.tls is not None
    tls12 = [c["name"] for c in config.tls.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES128-GCM-SHA256"]


BAD = [
    ("tls_server_confg: {}\n", "tls_server_confg", "unknown key"),
    ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice", "not a bcrypt hash"),
    ("basic_auth_users: [alice]\n", "basic_auth_users", "expected a mapping"),
    ("http_server_config:\n  headers:\n    Server: nginx\n", "http_server_config.headers.Server",
     "unknown key"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "http_server_config.headers.X-Frame-Options", "expected one of deny, sameorigin"),
    ("http_server_config:\n  http2: true\n", "http_server_config.http2", "HTTP/2 is not served"),
    ("rate_limit:\n  interval: 1 second\n  burst: 2\n", "rate_limit.interval", "duration"),
    ("rate_limit:\n  interval: 1s\n", "rate_limit.burst", "at least 1"),
    ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
     "tls_server_config.cert_file", "cannot read /nonexistent.crt"),
    ("tls_server_config:\n  cert: '-----BEGIN CERTIFICATE-----'\n", "tls_server_config.cert",
     "use cert_file and key_file"),
    ("a: [\n", "(file)", "not valid YAML"),
]
BAD_TLS = [
    ("  min_version: TLS14\n", "tls_server_config.min_version", "expected one of TLS10"),
    ("  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version",
     "above max_version"),
    ("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", r"tls_server_config.cipher_suites[0]",
     "TLS 1.3 suite"),
    ("  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, RC4]\n",
     r"tls_server_config.cipher_suites[1]", "unknown cipher suite 'RC4'"),
    ("  curve_preferences: [X25519]\n", "tls_server_config.curve_preferences", "cannot be honoured"),
    ("  client_auth_type: RequireAnyClientCert\n", "tls_server_config.client_auth_type",
     "use RequireAndVerifyClientCert"),
    ("  client_auth_type: VerifyClientCertIfGiven\n", "tls_server_config.client_ca_file",
     "needs the CA"),
    ("  client_auth_type: Sometimes\n", "tls_server_config.client_auth_type", "expected one of"),
    ("  client_ca_file: {ca}\n", "tls_server_config.client_auth_type",
     "without a client auth policy"),
    ("  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans", "needs a"),
]


@pytest.mark.parametrize(("text", "key", "problem"), BAD)
def test_a_bad_file_names_the_key(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load(path)
    assert raised.value.key == key
    assert str(raised.value).startswith(f"web config file {path}: {key}: ")
    assert problem in str(raised.value)


@pytest.mark.parametrize(("extra", "key", "problem"), BAD_TLS)
def test_tls_settings_python_cannot_honour_are_refused_by_name(tmp_path, pki, extra, key, problem):
    with pytest.raises(ConfigError) as raised:
        load(write(tmp_path, tls_section(pki, extra.format(ca=pki.cert))))
    assert (raised.value.key, problem in str(raised.value)) == (key, True), str(raised.value)


def test_a_key_that_does_not_match_the_certificate_names_key_file(tmp_path, pki):
    other = pki.issue("other")
    path = write(tmp_path, f"tls_server_config:\n  cert_file: {pki.directory / 'server.crt'}\n"
                           f"  key_file: {other.key}\n")
    with pytest.raises(ConfigError, match=r"tls_server_config\.key_file: .* is not the private key"):
        load(path)


def test_a_certificate_file_without_a_certificate_names_cert_file(tmp_path, pki):
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    path = write(tmp_path, f"tls_server_config:\n  cert_file: {junk}\n"
                           f"  key_file: {pki.directory / 'server.key'}\n")
    with pytest.raises(ConfigError, match=r"tls_server_config\.cert_file: .* holds no PEM"):
        load(path)


def test_a_missing_file_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r"--web\.config\.file: cannot read"):
        load(str(tmp_path / "absent.yml"))


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("1s", 1.0), ("250ms", 0.25),
                                               ("1m30s", 90.0), ("1.5h", 5400.0), ("10us", 1e-5)])
def test_go_durations(text, seconds):
    assert go_duration(text, "k") == pytest.approx(seconds)


def test_changes_are_followed_and_a_bad_change_fails_closed(tmp_path):
    path = write(tmp_path, "")
    live = WebConfigFile(path)
    assert not live.current().users

    Path(path).write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
    assert live.current().users == {"alice": HASH.encode()}

    Path(path).write_text("basic_auth_users:\n  alice: plaintext\n")
    with pytest.raises(InvalidWebConfig, match=r"basic_auth_users\.alice"):
        live.current()

    Path(path).write_text("")
    assert not live.current().users


def test_tls_cannot_be_switched_on_while_running(tmp_path, pki):
    path = write(tmp_path, "")
    live = WebConfigFile(path)
    Path(path).write_text(tls_section(pki))
    with pytest.raises(InvalidWebConfig, match="TLS cannot be turned on or off"):
        live.current()


def test_a_renewed_certificate_is_picked_up_without_a_restart(tmp_path, pki):
    ca = CertificateAuthority(tmp_path / "pki")
    issued = ca.server()
    live = WebConfigFile(write(tmp_path, f"tls_server_config:\n  cert_file: {issued.cert}\n"
                                         f"  key_file: {issued.key}\n"))
    before = live.current().tls
    assert live.current().tls is before  # unchanged files: no reload
    renewed = CertificateAuthority(tmp_path / "pki2").server()
    issued.cert.write_bytes(renewed.cert.read_bytes())
    issued.key.write_bytes(renewed.key.read_bytes())
    os.utime(issued.cert, ns=(1, 1))  # a different mtime even within the clock's resolution
    assert live.current().tls is not before


@pytest.mark.integration
def test_cipher_suite_table_matches_openssls_standard_names():
    openssl = require_binary("openssl")
    listing = subprocess.run([openssl, "ciphers", "-stdname", "ALL"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
    standard = {}
    for line in listing.splitlines():
        iana, _, rest = line.partition(" - ")
        standard[iana.strip()] = rest.split()[0]
    for go_name, openssl_name in CIPHER_SUITES.items():
        assert standard.get(go_name) == openssl_name, go_name


def test_the_example_file_is_valid(tmp_path):
    ca = CertificateAuthority(tmp_path)
    issued = ca.server()
    issued.cert.rename(tmp_path / "agent-exporter.crt")
    issued.key.rename(tmp_path / "agent-exporter.key")
    ca.cert.rename(tmp_path / "clients-ca.pem")
    example = (REPO / "examples" / "web-config.yml").read_text()
    config = load(write(tmp_path, example))
    assert config.client_cert_required and set(config.users) == {"prometheus"}
    assert ("X-Frame-Options", "deny") in config.headers
