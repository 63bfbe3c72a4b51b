"""The `--web.config.file`: TLS, basic auth, response headers and a rate limit for every endpoint,
in the format of Prometheus' exporter-toolkit (docs/web-configuration.md there), so one file
serves this exporter and the Go exporters beside it.

Python's ssl module cannot do everything Go's crypto/tls does; a key it cannot honour stops
start-up with a message naming the key instead of being silently ignored. Relative paths are
resolved against the file's directory, as the toolkit does.

`WebConfigFile` re-reads the file when it, or a certificate or CA file it names, changes (checked
with stat on every connection and request), so a rotated certificate or a new user needs no
restart. A file that turns bad while running fails closed, as the toolkit does: requests get
500 and TLS handshakes fail until it is fixed.
"""
from __future__ import annotations

import logging
import os
import re
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .validation import ConfigError

log = logging.getLogger(__name__)

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's tls.CipherSuites() names for TLS <= 1.2 → OpenSSL's names (`openssl ciphers -stdname`).
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go can ask for a certificate without verifying it; Python's ssl module verifies what it asks for.
UNVERIFIED_CLIENT_AUTH = {"RequestClientCert", "RequireAnyClientCert", "RequireClientCert"}
# The toolkit's fixed set of configurable headers, with the values it allows (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
BCRYPT_HASH = re.compile(r"^\$2[abxy]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

TLS_KEYS = {"cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type",
            "client_ca_file", "client_allowed_sans", "min_version", "max_version",
            "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"}
TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}


@dataclass(frozen=True)
class RateLimit:
    """The toolkit's token bucket: one request per `interval` seconds, bursts of `burst`."""

    interval: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    """What a web config file asks for; the empty default serves plain HTTP without auth."""

    tls: ssl.SSLContext | None = None
    client_allowed_sans: frozenset[str] | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    rate_limit: RateLimit | None = None
    files: tuple[str, ...] = ()  # the files it was built from, watched for changes

    @property
    def client_cert_required(self) -> bool:
        return self.tls is not None and self.tls.verify_mode == ssl.CERT_REQUIRED


class _Problem(Exception):
    """A bad key inside the file; becomes a ConfigError with the file as its origin."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key = key


def _expect(value: Any, kind: type, key: str, what: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _Problem(key, f"expected {what}, got {type(value).__name__}")
    return value


def _mapping(value: Any, allowed: set[str], key: str) -> dict[str, Any]:
    _expect(value, dict, key or "(file)", "a mapping")
    for name in value:
        if name not in allowed:
            raise _Problem(f"{key}.{name}" if key else str(name),
                           f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def _strings(value: Any, key: str) -> list[str]:
    _expect(value, list, key, "a list of strings")
    for n, item in enumerate(value):
        _expect(item, str, f"{key}[{n}]", "a string")
    return value


def _readable(base: str, path: Any, key: str) -> str:
    _expect(path, str, key, "a file name")
    full = os.path.join(base, path)
    try:
        with open(full, "rb"):
            pass
    except OSError as exc:
        raise _Problem(key, f"cannot read {full}: {exc.strerror}") from None
    return full


def _tls(section: dict[str, Any], base: str) -> tuple[ssl.SSLContext, frozenset[str] | None,
                                                     list[str]]:
    """An SSLContext for the `tls_server_config` section, and the files it was loaded from."""
    key = "tls_server_config"
    for inline in ("cert", "key"):
        if inline in section:
            raise _Problem(f"{key}.{inline}", "inline certificates and keys cannot be loaded by "
                                              "Python's ssl module: use cert_file and key_file")
    if "curve_preferences" in section:
        raise _Problem(f"{key}.curve_preferences",
                       "cannot be honoured: Python's ssl module sets no list of curves; remove it")
    for name in ("cert_file", "key_file"):
        if name not in section:
            raise _Problem(f"{key}.{name}", "missing: TLS needs cert_file and key_file")
    cert = _readable(base, section["cert_file"], f"{key}.cert_file")
    private = _readable(base, section["key_file"], f"{key}.key_file")
    files = [cert, private]

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=cert)
    except ssl.SSLError as exc:
        raise _Problem(f"{key}.cert_file", f"{cert} holds no PEM certificate: {exc}") from None
    try:
        context.load_cert_chain(cert, private)
    except ssl.SSLError as exc:
        raise _Problem(f"{key}.key_file", f"{private} is not the private key of {cert} "
                                          f"(PEM, unencrypted): {exc}") from None

    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        value = section.get(name, default)
        if value not in TLS_VERSIONS:
            raise _Problem(f"{key}.{name}", f"expected one of {', '.join(TLS_VERSIONS)}, "
                                            f"got {value!r}")
        versions[name] = TLS_VERSIONS[value]
    if versions["min_version"] > versions["max_version"]:
        raise _Problem(f"{key}.min_version", "is above max_version")
    context.minimum_version = versions["min_version"]
    context.maximum_version = versions["max_version"]

    suites = _strings(section.get("cipher_suites", []), f"{key}.cipher_suites")
    for n, suite in enumerate(suites):
        if suite in TLS13_SUITES:
            raise _Problem(f"{key}.cipher_suites[{n}]",
                           f"{suite} is a TLS 1.3 suite; those cannot be chosen (Go ignores them "
                           "too): list only TLS 1.2 suites")
        if suite not in CIPHER_SUITES:
            raise _Problem(f"{key}.cipher_suites[{n}]",
                           f"unknown cipher suite {suite!r} (known: {', '.join(CIPHER_SUITES)})")
    if suites:
        try:
            context.set_ciphers(":".join(CIPHER_SUITES[s] for s in suites))
        except ssl.SSLError:
            raise _Problem(f"{key}.cipher_suites",
                           "none of these suites is available in this OpenSSL") from None
    if _expect(section.get("prefer_server_cipher_suites", True), bool,
               f"{key}.prefer_server_cipher_suites", "true or false"):
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE

    auth = section.get("client_auth_type", "NoClientCert")
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise _Problem(f"{key}.client_auth_type",
                       f"{auth} (a certificate that is not verified) cannot be honoured by "
                       "Python's ssl module: use RequireAndVerifyClientCert or "
                       "VerifyClientCertIfGiven")
    if auth not in CLIENT_AUTH:
        raise _Problem(f"{key}.client_auth_type",
                       f"expected one of {', '.join(CLIENT_AUTH)}, got {auth!r}")
    has_ca = "client_ca_file" in section or "client_ca" in section
    if has_ca and auth == "NoClientCert":
        raise _Problem(f"{key}.client_auth_type", "client CAs are configured without a client "
                                                  "auth policy (e.g. RequireAndVerifyClientCert)")
    if auth != "NoClientCert" and not has_ca:
        raise _Problem(f"{key}.client_ca_file", f"client_auth_type {auth} needs the CA that "
                                                "signs client certificates")
    context.verify_mode = CLIENT_AUTH[auth]
    if "client_ca_file" in section:
        ca = _readable(base, section["client_ca_file"], f"{key}.client_ca_file")
        files.append(ca)
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise _Problem(f"{key}.client_ca_file", f"{ca} holds no PEM certificate: {exc}") \
                from None
    elif "client_ca" in section:
        try:
            context.load_verify_locations(cadata=_expect(section["client_ca"], str,
                                                         f"{key}.client_ca", "PEM text"))
        except ssl.SSLError as exc:
            raise _Problem(f"{key}.client_ca", f"holds no PEM certificate: {exc}") from None

    sans = None
    if "client_allowed_sans" in section:
        if auth == "NoClientCert":
            raise _Problem(f"{key}.client_allowed_sans", "needs a client_auth_type that verifies "
                                                         "client certificates")
        sans = frozenset(_strings(section["client_allowed_sans"], f"{key}.client_allowed_sans"))
    context.set_alpn_protocols(["http/1.1"])
    context.options |= ssl.OP_NO_RENEGOTIATION  # a client could make the server redo handshakes
    return context, sans, files


def _users(value: Any) -> dict[str, bytes]:
    key = "basic_auth_users"
    _expect(value, dict, key, "a mapping of user names to bcrypt hashes")
    users = {}
    for user, hashed in value.items():
        _expect(user, str, key, "user names as strings")
        if ":" in user:
            raise _Problem(f"{key}.{user}", "a user name cannot contain ':' (basic auth)")
        _expect(hashed, str, f"{key}.{user}", "a bcrypt hash")
        if not BCRYPT_HASH.match(hashed):
            raise _Problem(f"{key}.{user}", "not a bcrypt hash ($2y$10$… as made by "
                                            "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        users[user] = hashed.encode()
    return users


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    key = "http_server_config.headers"
    _mapping(value, set(HEADERS), key)
    headers = []
    for name, text in value.items():
        _expect(text, str, f"{key}.{name}", "a string")
        allowed = HEADERS[name]
        if allowed is not None and text not in allowed:
            raise _Problem(f"{key}.{name}", f"expected one of {', '.join(allowed)}, got {text!r}")
        if "\r" in text or "\n" in text:
            raise _Problem(f"{key}.{name}", "must be one line")
        if text:  # blank: unset, as in the toolkit
            headers.append((name, text))
    return tuple(headers)


def go_duration(text: Any, key: str) -> float:
    """Seconds in a Go duration string ("1s", "250ms", "1m30s", "0")."""
    _expect(text, str, key, 'a duration such as "1s"')
    if text == "0":
        return 0.0
    parts = GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise _Problem(key, f'expected a duration such as "1s" or "250ms", got {text!r}')
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts)


def _rate_limit(value: Any) -> RateLimit | None:
    key = "rate_limit"
    _mapping(value, {"interval", "burst"}, key)
    interval = go_duration(value.get("interval", "0"), f"{key}.interval")
    burst = _expect(value.get("burst", 0), int, f"{key}.burst", "an integer")
    if interval == 0:
        return None
    if burst < 1:
        raise _Problem(f"{key}.burst", "must be at least 1 when interval is set")
    return RateLimit(interval, burst)


def parse(text: str, base: str) -> WebConfig:
    """A WebConfig from the file's text; paths are relative to `base`. Raises _Problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _Problem("(file)", f"not valid YAML: {exc}") from None
    raw = _mapping({} if raw is None else raw, TOP_KEYS, "")
    tls = sans = None
    files: list[str] = []
    section = _mapping(raw.get("tls_server_config") or {}, TLS_KEYS, "tls_server_config")
    if section:
        tls, sans, files = _tls(section, base)
    http = _mapping(raw.get("http_server_config") or {}, {"http2", "headers"},
                    "http_server_config")
    if _expect(http.get("http2", False), bool, "http_server_config.http2", "true or false"):
        raise _Problem("http_server_config.http2", "HTTP/2 is not served; set it to false or "
                                                   "remove it (clients fall back to HTTP/1.1)")
    return WebConfig(tls=tls, client_allowed_sans=sans,
                     users=_users(raw.get("basic_auth_users") or {}),
                     headers=_headers(http.get("headers") or {}),
                     rate_limit=_rate_limit(raw.get("rate_limit") or {}),
                     files=tuple(files))


def load(path: str) -> WebConfig:
    """Read and check the file; raises ConfigError naming the key and the file."""
    origin = f"web config file {path}"
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError("--web.config.file", f"cannot read: {exc.strerror}", origin) from None
    try:
        return parse(text, os.path.dirname(os.path.abspath(path)))
    except _Problem as exc:
        raise ConfigError(exc.key, str(exc), origin) from None


class InvalidWebConfig(Exception):
    """The web config file changed into something that cannot be served; fail closed."""


def _signature(paths: tuple[str, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError as exc:
            out.append(exc.errno)
    return tuple(out)


class WebConfigFile:
    """The file's current WebConfig, re-read when the file or a file it names changes."""

    def __init__(self, path: str, loader: Callable[[str], WebConfig] = load) -> None:
        self.path = path
        self._load = loader
        self._lock = threading.Lock()
        self._config = loader(path)
        self._tls = self._config.tls is not None
        self._signature = _signature(self._watched(self._config))
        self._error: str | None = None

    def _watched(self, config: WebConfig) -> tuple[str, ...]:
        return (self.path, *config.files)

    def current(self) -> WebConfig:
        """The configuration to serve with now; InvalidWebConfig while the file is bad."""
        with self._lock:
            signature = _signature(self._watched(self._config))
            if signature != self._signature:
                self._signature = signature
                self._reload()
            if self._error is not None:
                raise InvalidWebConfig(self._error)
            return self._config

    def _reload(self) -> None:
        try:
            config = self._load(self.path)
            if (config.tls is not None) != self._tls:
                raise ConfigError("tls_server_config", "TLS cannot be turned on or off while "
                                                       "running; restart the exporter",
                                  f"web config file {self.path}")
        except ConfigError as exc:
            self._error = str(exc)
            log.error("web config: %s; answering 500 until the file is fixed", exc)
            return
        self._config = config
        self._signature = _signature(self._watched(config))
        if self._error is not None:
            log.info("web config: %s is valid again", self.path)
        self._error = None
        log.info("web config: reloaded %s", self.path)
