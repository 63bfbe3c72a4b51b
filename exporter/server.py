"""The exporter's endpoints: GET/HEAD /metrics (Prometheus text or OpenMetrics, gzip, chosen by the
q-values of Accept and Accept-Encoding), /healthz (alive), /readyz (Redis reachable and
subscriptions live), /runbooks/<AlertName> (exporter.runbooks), / (links), and the POST routes
other parts mount (the alert bridge's /alertmanager). Connections, framing and their limits are
exporter.http_connections'.

Every request passes the web config first (its rate limit, then its basic auth, for which a
route's bearer token may stand in, as one Authorization header cannot carry both); a body is read
only after that, and only up to the route's limit. On a listener that is not loopback, a guarded
route (the alert bridge) never takes an unauthenticated request: with no token, basic auth or
verified client certificate configured it answers 404 and says why.
"""
from __future__ import annotations

import gzip
import hmac
import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder, gzip_accepted

from . import runbooks
from .basic_auth import BasicAuth
from .http_connections import ConnectionServer, Exchange, HttpStats, Limits
from .web_config import InvalidWebConfig, RateLimit, WebConfig, WebConfigFile

log = logging.getLogger(__name__)

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PLAIN = "text/plain; charset=utf-8"
GZIP_MIN_BYTES = 1024
QVALUE = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")
LANDING = b"""<!doctype html><html><head><title>agent-exporter</title></head><body>
<h1>agent-exporter</h1><p>Prometheus exporter for multi-agent AI systems on Redis.</p>
<ul><li><a href="metrics">/metrics</a></li><li><a href="healthz">/healthz</a></li>
<li><a href="readyz">/readyz</a></li><li><a href="runbooks">/runbooks</a> (the alerts'
runbooks)</li></ul></body></html>
"""
NO_WEB_CONFIG = WebConfig()

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class PostRoute:
    """A POST endpoint: `handle(body)` → (status, content type, body)."""

    handle: Callable[[bytes], tuple[int, str, bytes]]
    max_body_bytes: int
    token: Callable[[], str | None] | None = None  # a bearer token that also admits a request
    unguarded: str | None = None  # set: guarded; the 404 reason when nothing authenticates it
    disabled: str | None = None   # set: answers 404 with this reason


def by_quality(header: str | None) -> str:
    """An Accept-style header with its entries ordered by q-value, the q=0 ones dropped, for
    prometheus_client's helpers, which take the first entry they know."""
    ranked = []
    for n, entry in enumerate((header or "").split(",")):
        value, *params = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":  # RFC 9110 qvalue; anything else counts as 0
                quality = float(number) if QVALUE.fullmatch(number.strip()) else 0.0
        if value and quality > 0:
            ranked.append((-quality, n, entry.strip()))
    return ",".join(entry for _, _, entry in sorted(ranked))


def bearer_matches(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def resolve(listen: str) -> tuple[socket.AddressFamily, tuple]:
    """Address family and socket address for HOST:PORT ([v6]:PORT; no host: all IPv4)."""
    host, _, port = listen.rpartition(":")
    family, _, _, _, address = socket.getaddrinfo(host.strip("[]") or "0.0.0.0", int(port),
                                                  type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    return family, address


class TokenBucket:
    """The web config's rate_limit, as Go's x/time/rate limiter the toolkit uses."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(float(self.limit.burst),
                              self.tokens + (now - self.stamp) / self.limit.interval)
            self.stamp = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


class Server:
    def __init__(self, listen: str, render: Callable[[bool], bytes], ready: Callable[[], bool],
                 stats: HttpStats, web: WebConfigFile | None = None,
                 limits: Limits | None = None) -> None:
        self.render = render
        self.ready = ready
        self.stats = stats
        self.web = web.current if web is not None else lambda: NO_WEB_CONFIG
        self.posts: dict[str, PostRoute] = {}
        self.basic_auth = BasicAuth()
        initial = self.web().rate_limit  # read once at start-up, as the toolkit does
        self.bucket = TokenBucket(initial) if initial else None
        family, address = resolve(listen)
        self.connections = ConnectionServer(address, family, self.handle, self.web, stats, limits)
        self.address = self.connections.server_address
        self.exposed = not ipaddress.ip_address(str(self.address[0])).is_loopback
        self.gets = {"/metrics": self._metrics, "/healthz": self._healthz,
                     "/readyz": self._readyz, "/": self._landing}

    def mount(self, path: str, route: PostRoute) -> None:
        self.posts[path] = route

    def start(self) -> None:
        threading.Thread(target=self.connections.serve_forever, name="http", daemon=True).start()

    def close(self) -> None:
        """Stop serving. Shutting the listening socket down wakes the accept loop at once
        instead of at its next half-second poll."""
        try:
            self.connections.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connections.shutdown()
        self.connections.server_close()

    def handle(self, exchange: Exchange) -> None:
        try:
            web = self.web()
        except InvalidWebConfig:
            exchange.respond(500, [("Content-Type", PLAIN)],
                             b"the web config file is invalid; see the exporter's log\n")
            return
        headers: Headers = list(web.headers)
        if self.bucket is not None and not self.bucket.take():
            self.stats.reject("rate_limited")
            self._send(exchange, 429, PLAIN, b"too many requests\n", headers)
            return
        route = self.posts.get(exchange.path)
        if route is not None and exchange.method == "POST":
            self._post(exchange, route, web, headers)
        elif web.users and not self.basic_auth.check(web.users, exchange.header("Authorization")):
            self._unauthorized(exchange, headers, basic=True, bearer=False)
        elif (get := self._get_route(exchange.path)) is not None:
            if exchange.method in ("GET", "HEAD"):
                get(exchange, headers)
            else:
                self._send(exchange, 405, PLAIN, b"method not allowed\n",
                           [*headers, ("Allow", "GET, HEAD")])
        elif route is not None:
            self._send(exchange, 405, PLAIN, b"method not allowed\n", [*headers, ("Allow", "POST")])
        else:
            self._send(exchange, 404, PLAIN, b"not found\n", headers)

    def _get_route(self, path: str) -> Callable[[Exchange, Headers], None] | None:
        if path == "/runbooks" or path.startswith("/runbooks/"):
            return self._runbooks
        return self.gets.get(path)

    def _post(self, exchange: Exchange, route: PostRoute, web: WebConfig, headers: Headers) -> None:
        if route.disabled is not None:
            self._send(exchange, 404, PLAIN, f"{route.disabled}\n".encode(), headers)
            return
        try:
            token = route.token() if route.token is not None else None
        except (OSError, ValueError) as exc:
            log.error("cannot read the bearer token of POST %s: %s", exchange.path, exc)
            self._send(exchange, 500, PLAIN, b"bearer token file unreadable\n", headers)
            return
        authorization = exchange.header("Authorization")
        bearer = token is not None and bearer_matches(authorization, token)
        basic = bool(web.users) and not bearer and self.basic_auth.check(web.users, authorization)
        if (token is not None or web.users) and not (bearer or basic):
            self._unauthorized(exchange, headers, basic=bool(web.users), bearer=token is not None)
            return
        if (route.unguarded is not None and self.exposed
                and not (bearer or basic or exchange.peer_verified)):
            self._send(exchange, 404, PLAIN, f"{route.unguarded}\n".encode(), headers)
            return
        status, content_type, body = route.handle(exchange.read_body(route.max_body_bytes))
        self._send(exchange, status, content_type, body, headers)

    def _unauthorized(self, exchange: Exchange, headers: Headers, basic: bool,
                      bearer: bool) -> None:
        self.stats.reject("unauthorized")
        challenges = [("WWW-Authenticate", scheme) for scheme, wanted
                      in (('Basic realm="agent-exporter"', basic), ("Bearer", bearer)) if wanted]
        message = b"missing or wrong bearer token\n" if bearer and not basic else \
            b"authentication required\n"
        self._send(exchange, 401, PLAIN, message, [*headers, *challenges])

    def _metrics(self, exchange: Exchange, headers: Headers) -> None:
        _, content_type = choose_encoder(by_quality(exchange.header("Accept")))
        openmetrics = content_type.startswith("application/openmetrics-text")
        self._send(exchange, 200, OPENMETRICS if openmetrics else TEXT, self.render(openmetrics),
                   [*headers, ("Vary", "Accept, Accept-Encoding")])

    def _healthz(self, exchange: Exchange, headers: Headers) -> None:
        self._send(exchange, 200, PLAIN, b"ok\n", headers)

    def _readyz(self, exchange: Exchange, headers: Headers) -> None:
        if self.ready():
            self._send(exchange, 200, PLAIN, b"ready\n", headers)
        else:
            self._send(exchange, 503, PLAIN,
                       b"not ready: Redis unreachable or not subscribed\n", headers)

    def _runbooks(self, exchange: Exchange, headers: Headers) -> None:
        self._send(exchange, *runbooks.respond(exchange.path), headers)

    def _landing(self, exchange: Exchange, headers: Headers) -> None:
        self._send(exchange, 200, "text/html; charset=utf-8", LANDING, headers)

    def _send(self, exchange: Exchange, status: int, content_type: str, body: bytes,
              headers: Headers) -> None:
        """The answer, gzipped when the client takes gzip and it is worth it."""
        headers = [*headers, ("Content-Type", content_type)]
        if not any(name == "Vary" for name, _ in headers):
            headers.append(("Vary", "Accept-Encoding"))
        if len(body) > GZIP_MIN_BYTES and gzip_accepted(
                by_quality(exchange.header("Accept-Encoding"))):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        exchange.respond(status, headers, body)
        log.debug("%s %s %d", exchange.method, exchange.target, status)
