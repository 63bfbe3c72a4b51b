"""HTTP: /metrics (Prometheus text or OpenMetrics by Accept, gzip by Accept-Encoding), /healthz
(alive), /readyz (Redis reachable and subscriptions live), / (links), and POST handlers that
other parts mount (the alert bridge's /alertmanager).
"""
from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
LANDING = b"""<!doctype html><html><head><title>agent-exporter</title></head><body>
<h1>agent-exporter</h1><p>Prometheus exporter for multi-agent AI systems on Redis.</p>
<ul><li><a href="metrics">/metrics</a></li><li><a href="healthz">/healthz</a></li>
<li><a href="readyz">/readyz</a></li></ul></body></html>
"""

# A POST handler gets (headers, body) and returns (status, content type, body).
PostHandler = Callable[[Any, bytes], tuple[int, str, bytes]]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], render: Callable[[bool], bytes],
                 ready: Callable[[], bool]) -> None:
        super().__init__(address, Handler)
        self.render = render
        self.ready = ready
        self.posts: dict[str, tuple[PostHandler, int]] = {}

    def mount(self, path: str, handler: PostHandler, max_body_bytes: int) -> None:
        self.posts[path] = (handler, max_body_bytes)


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            openmetrics = "application/openmetrics-text" in self.headers.get("Accept", "")
            self._send(200, OPENMETRICS if openmetrics else TEXT, self.server.render(openmetrics))
        elif path == "/healthz":
            self._send(200, "text/plain", b"ok\n")
        elif path == "/readyz":
            ready = self.server.ready()
            self._send(200 if ready else 503, "text/plain",
                       b"ready\n" if ready else b"not ready: Redis unreachable or not subscribed\n")
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", LANDING)
        else:
            self._send(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        mounted = self.server.posts.get(self.path.split("?", 1)[0])
        if mounted is None:
            self._send(404, "text/plain", b"not found\n")
            return
        handler, limit = mounted
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._send(400, "text/plain", b"bad Content-Length\n")
            return
        if length > limit:
            self.close_connection = True
            self._send(413, "text/plain", f"body over {limit} bytes\n".encode())
            return
        status, content_type, body = handler(self.headers, self.rfile.read(length))
        self._send(status, content_type, body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        if len(body) > 1024 and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            encoding = "gzip"
        else:
            encoding = None
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
