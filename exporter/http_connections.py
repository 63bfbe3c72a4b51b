"""HTTP/1.1 connections for the exporter's endpoints: h11 frames the requests; this module holds
the limits that keep a careless or hostile client from starving a scrape.

- Framing is h11's: a strict Content-Length, chunked bodies (read under the same size cap as any
  other). Transfer-Encoding together with Content-Length, or on HTTP/1.0, is refused: a proxy in
  front could frame it differently. What follows a request is parsed as the next request only
  when that request's body was read to its end; on every error, and whenever a body was left
  unread, the connection closes after the answer.
- Deadlines instead of per-read timeouts, so a client dripping a byte at a time gains nothing:
  TLS handshake and request head within `head_seconds` of the accept (of the first byte, on a
  kept-alive connection), the body within `body_seconds`, the answer within `write_seconds`; a
  kept-alive connection may idle `idle_seconds` between requests.
- At most `max_connections` at once. One more closes the connection that has waited longest on
  its client, idle ones first, so a scrape always gets in; one running a handler is never closed.
  Running out of file descriptors sheds a connection and backs off instead of spinning on accept.
"""
from __future__ import annotations

import enum
import errno
import http
import ipaddress
import logging
import resource
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .web_config import InvalidWebConfig, WebConfig

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
RECV_BYTES = 16384
WRITE_CHUNK = 1 << 20  # per send call; the deadline is checked between them
SMALL_BODY = 65536  # sent in one write with the head (two small writes meet Nagle's delay)
LINGER_SECONDS = 1.0  # after an error, read (and drop) what the client still sends, so the
LINGER_BYTES = 262144  # answer is not lost to a TCP reset, but only this long and this much
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
REJECT_REASONS = ("malformed", "header_too_large", "bad_framing", "body_too_large", "timeout",
                  "unauthorized", "rate_limited", "tls_handshake")


def default_max_connections() -> int:
    """A quarter of the file-descriptor limit, at most 64: the rest stays for Redis and files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 4))


@dataclass(frozen=True)
class Limits:
    head_seconds: float = 10.0
    idle_seconds: float = 60.0
    body_seconds: float = 30.0
    write_seconds: float = 60.0
    max_head_bytes: int = 16384
    max_connections: int = field(default_factory=default_max_connections)


class Phase(enum.IntEnum):
    """What a connection waits for; the lower, the sooner it is shed when the server is full."""

    IDLE = 0      # the first byte of a request
    READING = 1   # the rest of a request
    WRITING = 2   # the client to take the answer
    BUSY = 3      # a handler: never shed


class Refused(Exception):
    """Answer `status` with `message` and close; `reason` labels the rejection counter (None:
    not the client's fault, not counted)."""

    def __init__(self, status: int, reason: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class _Timeout(Exception):
    pass


class _Closed(Exception):
    """The connection ends without another answer."""


class HttpStats:
    """The connection counts, exposed as agent_exporter_http_* at scrape time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rejected = dict.fromkeys(REJECT_REASONS, 0)
        self.shed = 0
        self.connections = 0
        self.limit = default_max_connections()

    def reject(self, reason: str) -> None:
        with self.lock:
            self.rejected[reason] += 1

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        with self.lock:
            rejected, shed, connections = dict(self.rejected), self.shed, self.connections
        yield GaugeMetricFamily("agent_exporter_http_connections",
                                "HTTP connections open now.", value=connections)
        yield GaugeMetricFamily("agent_exporter_http_connections_limit",
                                "HTTP connections served at once; past it the longest-waiting "
                                "one is closed.", value=self.limit)
        yield CounterMetricFamily("agent_exporter_http_connections_shed",
                                  "HTTP connections closed to make room for a new one.",
                                  value=shed)
        family = CounterMetricFamily("agent_exporter_http_requests_rejected",
                                     "HTTP requests refused before reaching a handler, by reason.",
                                     labels=["reason"])
        for reason, count in rejected.items():
            family.add_metric([reason], count)
        yield family


def _san_values(cert: dict[str, Any]) -> set[str]:
    """A certificate's subject alternative names as Go prints them (IPs in canonical form)."""
    values = set()
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            value = str(ipaddress.ip_address(value.strip()))
        values.add(value)
    return values


class Exchange:
    """One request on a connection, as a handler sees it."""

    def __init__(self, connection: Connection, request: h11.Request) -> None:
        self._connection = connection
        self._request = request
        self.method = request.method.decode("ascii")
        self.target = request.target.decode("ascii", "replace")
        self.path = urlsplit(self.target).path
        self.peer_verified = connection.peer_verified
        self.responded = False

    def header(self, name: str) -> str | None:
        """A header's value; repeated headers joined with ", " as HTTP allows."""
        wanted = name.lower().encode()
        values = [value for key, value in self._request.headers if key == wanted]
        return b", ".join(values).decode("latin-1") if values else None

    def read_body(self, limit: int) -> bytes:
        """The whole body, at most `limit` bytes; Refused (413, 400, 408) otherwise."""
        return self._connection.read_body(self._request, limit)

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send the answer (headers only for HEAD); Content-Length is added here."""
        self.responded = True
        self._connection.respond(status, headers, body)


class Connection:
    """One client connection, served by its own thread until it closes."""

    def __init__(self, sock: socket.socket, server: ConnectionServer) -> None:
        self.sock: socket.socket = sock
        self.server = server
        self.limits = server.limits
        self.accepted = self.since = time.monotonic()
        self.phase = Phase.IDLE
        self.shed = False
        self.peer_verified = False
        self.head_request = False
        self._eof = False
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)

    def enter(self, phase: Phase) -> None:
        self.phase = phase
        self.since = time.monotonic()

    def serve(self) -> None:
        try:
            if self.server.tls:
                self._handshake()
            first = True
            while True:
                request = self._read_head(first)
                if request is None:
                    return
                first = False
                self.head_request = request.method == b"HEAD"
                exchange = Exchange(self, request)
                self.enter(Phase.BUSY)
                _check_framing(request)
                self._run(exchange)
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    return
                self.h11.start_next_cycle()
        except Refused as refusal:
            self._refuse(refusal)
        except (_Closed, _Timeout, OSError):
            pass
        except Exception:  # a bug here must not pass silently, nor keep the descriptor
            log.exception("HTTP connection failed")
        finally:
            self.server.forget(self)

    def _run(self, exchange: Exchange) -> None:
        """The handler; a failure of its own is a 500, never a silent close."""
        try:
            self.server.app(exchange)
        except (Refused, _Closed, _Timeout, OSError):
            raise
        except Exception:
            log.exception("HTTP handler failed on %s %s", exchange.method, exchange.path)
            if not exchange.responded:
                raise Refused(500, None, "internal error; see the exporter's log") from None
        if not exchange.responded:
            raise Refused(500, None, "no answer")

    def _handshake(self) -> None:
        try:
            config = self.server.web()
        except InvalidWebConfig:
            raise _Closed from None
        assert config.tls is not None
        self.server.wrap(self, config.tls)
        try:
            self.sock.settimeout(max(0.001, self.accepted + self.limits.head_seconds
                                     - time.monotonic()))
            self.sock.do_handshake()  # type: ignore[attr-defined]
            cert = self.sock.getpeercert()  # type: ignore[attr-defined]
        except (OSError, ValueError) as exc:
            if not self.shed:
                self.server.stats.reject("tls_handshake")
                log.debug("TLS handshake failed: %s", exc)
            raise _Closed from None
        self.peer_verified = bool(cert)
        allowed = config.client_allowed_sans
        if allowed is not None and not (cert and _san_values(cert) & _canonical(allowed)):
            self.server.stats.reject("tls_handshake")
            log.debug("client certificate has none of client_allowed_sans")
            raise _Closed

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(RECV_BYTES)
        except TimeoutError:
            raise _Timeout from None
        if not data:
            self._eof = True
        return data

    def _next_event(self, deadline: float) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof or self.shed:
                    raise _Closed from None
                status = exc.error_status_hint
                reason = {431: "header_too_large", 501: "bad_framing"}.get(status, "malformed")
                raise Refused(status, reason, str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            data = self._recv(deadline)
            if data and self.phase is Phase.IDLE:
                self.enter(Phase.READING)
                deadline = min(deadline, time.monotonic() + self.limits.head_seconds)
            self.h11.receive_data(data)

    def _read_head(self, first: bool) -> h11.Request | None:
        """The next request's head; None when the client is done or idled out."""
        now = time.monotonic()
        if first:
            deadline = self.accepted + self.limits.head_seconds
        elif self.h11.trailing_data[0]:  # pipelined: part of the next request is here already
            deadline = now + self.limits.head_seconds
        else:
            deadline = now + self.limits.idle_seconds
        self.enter(Phase.READING if self.h11.trailing_data[0] else Phase.IDLE)
        try:
            event = self._next_event(deadline)
        except _Timeout:
            if self.phase is Phase.READING:
                raise Refused(408, "timeout", "request head not complete in time") from None
            if first:  # a connection that never sends a request
                self.server.stats.reject("timeout")
            return None
        return event if isinstance(event, h11.Request) else None

    def read_body(self, request: h11.Request, limit: int) -> bytes:
        declared = [int(v) for k, v in request.headers if k == b"content-length"]
        if declared and declared[0] > limit:
            raise Refused(413, "body_too_large", f"body over {limit} bytes")
        if self.h11.they_are_waiting_for_100_continue:
            self._send(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])),
                       time.monotonic() + self.limits.write_seconds)
        self.enter(Phase.READING)
        deadline = time.monotonic() + self.limits.body_seconds
        chunks, size = [], 0
        try:
            while True:
                event = self._next_event(deadline)
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > limit:
                        raise Refused(413, "body_too_large", f"body over {limit} bytes")
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise _Closed
        except _Timeout:
            raise Refused(408, "timeout", "request body not complete in time") from None
        finally:
            self.enter(Phase.BUSY)
        return b"".join(chunks)

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        closing = any(name.lower() == "connection" for name, _ in headers)
        if not closing and self.h11.their_state is h11.SEND_BODY and not self._body_done():
            headers = [*headers, ("Connection", "close")]
        response = h11.Response(status_code=status, reason=http.HTTPStatus(status).phrase,
                                headers=[*headers, ("Content-Length", str(len(body)))])
        deadline = time.monotonic() + self.limits.write_seconds
        head = self.h11.send(response) or b""
        if self.h11.our_state is h11.SEND_BODY and not self.head_request:
            parts = self.h11.send_with_data_passthrough(h11.Data(data=body)) or []
            if len(body) <= SMALL_BODY:
                parts, head = [], head + b"".join(parts)
            self._send(head, deadline)
            for part in parts:
                self._send(part, deadline)
        else:
            self._send(head, deadline)
        self._send(self.h11.send(h11.EndOfMessage()) or b"", deadline)
        self.enter(Phase.BUSY)

    def _body_done(self) -> bool:
        """Whether the request had no body left (its end is already here); reads no socket."""
        try:
            return isinstance(self.h11.next_event(), h11.EndOfMessage)
        except h11.RemoteProtocolError:
            return False

    def _send(self, data: bytes | bytearray | memoryview, deadline: float) -> None:
        self.enter(Phase.WRITING)
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            self.sock.settimeout(remaining)
            sent = self.sock.send(view[:WRITE_CHUNK])
            view = view[sent:]

    def _refuse(self, refusal: Refused) -> None:
        """Answer an error, then close after letting the client's remaining bytes drain."""
        if refusal.reason is not None:
            self.server.stats.reject(refusal.reason)
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            self.respond(refusal.status, [("Connection", "close"),
                                          ("Content-Type", "text/plain; charset=utf-8")],
                         f"{refusal}\n".encode())
            self._linger()
        except (_Timeout, OSError):
            pass

    def _linger(self) -> None:
        socket.socket.shutdown(self.sock, socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        drained = 0
        while drained < LINGER_BYTES and (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            data = socket.socket.recv(self.sock, RECV_BYTES)
            if not data:
                return
            drained += len(data)


def _canonical(names: frozenset[str]) -> set[str]:
    out = set()
    for name in names:
        try:
            out.add(str(ipaddress.ip_address(name)))
        except ValueError:
            out.add(name)
    return out


def _check_framing(request: h11.Request) -> None:
    if request.http_version not in (b"1.0", b"1.1"):  # h11 reads "HTTP/2.0" as 1.1
        raise Refused(505, "malformed", "only HTTP/1.0 and HTTP/1.1 are served")
    if request.method == b"CONNECT":  # what follows it is no longer HTTP
        raise Refused(405, "malformed", "CONNECT is not served")
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names and (b"content-length" in names
                                          or request.http_version == b"1.0"):
        raise Refused(400, "bad_framing", "Transfer-Encoding together with Content-Length, or "
                                          "on HTTP/1.0, is ambiguous")


class ConnectionServer(socketserver.TCPServer):
    """Accepts connections and serves each in a thread, within the limits above."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 app: Callable[[Exchange], None], web: Callable[[], WebConfig],
                 stats: HttpStats, limits: Limits | None = None) -> None:
        self.address_family = family
        self.app = app
        self.web = web
        self.stats = stats
        self.limits = limits or Limits()
        self.tls = web().tls is not None
        self._lock = threading.Lock()
        self._open: set[Connection] = set()
        self._accept_delay = 0.0
        stats.limit = self.limits.max_connections
        super().__init__(address, socketserver.BaseRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            sock, address = self.socket.accept()
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                self._out_of_descriptors(exc)
            raise
        self._accept_delay = 0.0
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answers are whole writes
        return sock, address

    def _out_of_descriptors(self, exc: OSError) -> None:
        """Free a descriptor by shedding a connection, and back off like Go's net/http."""
        with self._lock:
            self._shed_one()
        if not self._accept_delay:  # once per streak, not once per retry
            log.warning("accept failed (%s); shedding connections and retrying with back-off "
                        "up to 1 s", exc.strerror)
        self._accept_delay = min(1.0, max(0.005, self._accept_delay * 2))
        time.sleep(self._accept_delay)

    def process_request(self, request: Any, client_address: Any) -> None:
        connection = Connection(request, self)
        with self._lock:
            live = sum(1 for c in self._open if not c.shed)
            if live >= self.limits.max_connections and not self._shed_one():
                self.shutdown_request(request)  # every slot runs a handler: try again later
                return
            self._open.add(connection)
            self.stats.connections = len(self._open)
        try:
            threading.Thread(target=connection.serve, name="http-connection",
                             daemon=True).start()
        except RuntimeError:
            self.forget(connection)
            raise

    def _shed_one(self) -> bool:
        """Close the connection waiting longest on its client (idle first); under the lock."""
        waiting = [c for c in self._open if not c.shed and c.phase is not Phase.BUSY]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: (c.phase, c.since))
        victim.shed = True
        try:
            socket.socket.shutdown(victim.sock, socket.SHUT_RDWR)
        except OSError:
            pass
        with self.stats.lock:
            self.stats.shed += 1
        return True

    def wrap(self, connection: Connection, context: ssl.SSLContext) -> None:
        """TLS around a connection's socket, under the lock so shedding sees the new socket."""
        with self._lock:
            connection.sock = context.wrap_socket(connection.sock, server_side=True,
                                                  do_handshake_on_connect=False)

    def forget(self, connection: Connection) -> None:
        """Close a connection; off the books first, so shedding never sees a closed socket."""
        with self._lock:
            self._open.discard(connection)
            self.stats.connections = len(self._open)
        connection.sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("HTTP accept failed")

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            for connection in self._open:
                connection.shed = True
                try:
                    socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)
                except OSError:
                    pass
