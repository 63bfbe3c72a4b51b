"""HTTP over a raw socket, for requests no well-behaved client would send, and a strict reader of
what comes back (every response on the connection, and whether the server closed it)."""
from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes


@dataclass
class Conversation:
    responses: list[Response]
    closed: bool  # the server closed the connection
    seconds: float  # from the last byte sent to the close (or the read deadline)


def connect(port: int, context: ssl.SSLContext | None = None, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return context.wrap_socket(sock, server_hostname="127.0.0.1") if context else sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool, float]:
    """Everything the server sends until it closes, or until `timeout` passes."""
    start = time.monotonic()
    deadline = start + timeout
    data = b""
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True, time.monotonic() - start
        if not chunk:
            return data, True, time.monotonic() - start
        data += chunk
    return data, False, time.monotonic() - start


def talk(port: int, data: bytes, timeout: float = 5.0, head: bool = False,
         context: ssl.SSLContext | None = None) -> Conversation:
    """Send `data` at once and read every answer until the server closes (or `timeout`)."""
    with connect(port, context) as sock:
        sock.sendall(data)
        received, closed, seconds = read_until_closed(sock, timeout)
    return Conversation(parse(received, head), closed, seconds)


def parse(data: bytes, head: bool = False) -> list[Response]:
    """Responses framed by Content-Length (the only framing the exporter sends)."""
    responses = []
    while data:
        head_end = data.index(b"\r\n\r\n")
        lines = data[:head_end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        length = 0 if head or status == 100 else int(headers.get("content-length", "0"))
        body = data[head_end + 4:head_end + 4 + length]
        responses.append(Response(status, headers, body))
        data = data[head_end + 4 + length:]
    return responses


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
            version: str = "HTTP/1.1") -> bytes:
    """A well-formed request's bytes (Host and, for a body, Content-Length added)."""
    all_headers = {"Host": "127.0.0.1", **(headers or {})}
    if body and "Transfer-Encoding" not in all_headers:
        all_headers.setdefault("Content-Length", str(len(body)))
    lines = [f"{method} {path} {version}", *(f"{k}: {v}" for k, v in all_headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
