"""The HTTP server in-process, with short limits: framing, deadlines, shedding, negotiation and
auth before any body is read. The same classes through the real command line, with the default
limits, are in test_http_hostile.py."""
from __future__ import annotations

import base64
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

from exporter.basic_auth import BasicAuth, credentials
from exporter.http_connections import HttpStats, Limits, Phase
from exporter.server import PostRoute, Server, TokenBucket, bearer_matches, by_quality
from exporter.web_config import RateLimit, WebConfigFile
from tests.support.procs import wait_until
from tests.support.rawhttp import connect, parse, read_until_closed, request, talk

TOKEN = "t0ken"
METRICS = b"# HELP up x\n# TYPE up gauge\nup 1\n" * 100  # over the gzip threshold


class Recorder:
    """A POST handler that remembers the bodies it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, body: bytes) -> tuple[int, str, bytes]:
        self.bodies.append(body)
        return 200, "text/plain", b"got %d bytes\n" % len(body)


@pytest.fixture()
def serve() -> Iterator[Callable[..., tuple[Server, Recorder]]]:
    started: list[Server] = []

    def start(limits: Limits | None = None, web: WebConfigFile | None = None,
              listen: str = "127.0.0.1:0", token: str | None = TOKEN) -> tuple[Server, Recorder]:
        server = Server(listen, lambda openmetrics: METRICS + (b"# EOF\n" if openmetrics else b""),
                        lambda: True, HttpStats(), web, limits)
        recorder = Recorder()
        server.mount("/post", PostRoute(recorder, max_body_bytes=100, token=lambda: token,
                                        unguarded="off: nothing authenticates POST /post"))
        server.start()
        started.append(server)
        return server, recorder

    yield start
    for server in started:
        server.close()


def port(server: Server) -> int:
    return int(server.address[1])


def post(body: bytes, token: str | None = TOKEN, **headers: str) -> bytes:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return request("POST", "/post", {k.replace("_", "-"): v for k, v in headers.items()}, body)


# -- header parsing ---------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "expected"), [
    ("application/openmetrics-text;q=0, text/plain", "text/plain"),
    ("text/plain;q=0.5, application/openmetrics-text;version=1.0.0",
     "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    ("gzip;q=0, identity", "identity"),
    ("gzip;q=0.000", ""),
    ("a;q=nan, b;q=x, c", "c"),
    ("a;q=0.2, b;q=0.2, c;q=0.9", "c;q=0.9,a;q=0.2,b;q=0.2"),
    (None, ""),
])
def test_by_quality_orders_entries_and_drops_q0(header, expected):
    assert by_quality(header) == expected


def test_bearer_and_basic_credentials_are_parsed_strictly():
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN) and bearer_matches(f"bearer  {TOKEN} ", TOKEN)
    assert not bearer_matches(f"Basic {TOKEN}", TOKEN) and not bearer_matches(None, TOKEN)
    basic = base64.b64encode(b"alice:pa:ss").decode()
    assert credentials(f"Basic {basic}") == ("alice", "pa:ss")
    assert credentials("Basic !!!") is None
    assert credentials(f"Basic {base64.b64encode(b'no-colon').decode()}") is None


def test_basic_auth_checks_bcrypt_and_caches_the_verdict(monkeypatch):
    users = {"alice": bcrypt.hashpw(b"right", bcrypt.gensalt(4))}
    auth = BasicAuth()

    def header(user: str, pw: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()

    assert auth.check(users, header("alice", "right"))
    assert not auth.check(users, header("alice", "wrong"))
    assert not auth.check(users, header("mallory", "fakepassword"))  # the dummy hash's password
    calls = []
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: calls.append(a) or False)
    assert auth.check(users, header("alice", "right")), "cached: no bcrypt on every scrape"
    assert not calls


@pytest.mark.parametrize(("listen", "exposed"), [("127.0.0.1:0", False), ("localhost:0", False),
                                                ("[::1]:0", False), ("0.0.0.0:0", True),
                                                (":0", True), ("[::]:0", True)])
def test_only_loopback_listeners_count_as_unexposed(serve, listen, exposed):
    server, _ = serve(listen=listen)
    assert server.exposed is exposed


def test_token_bucket_allows_a_burst_then_one_per_interval():
    bucket = TokenBucket(RateLimit(interval=3600, burst=2))
    assert [bucket.take() for _ in range(3)] == [True, True, False]


# -- framing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "+5", "5 5", "1, 2",
                                    "99999999999999999999999"])
def test_a_bad_content_length_is_400_and_closes(serve, length):
    server, recorder = serve()
    reply = talk(port(server), post(b"", Content_Length=length) + b"12345")
    assert [r.status for r in reply.responses] == [400] and reply.closed
    assert not recorder.bodies
    assert server.stats.rejected["malformed"] == 1


def test_a_body_is_never_parsed_as_a_request(serve):
    server, _ = serve()
    smuggled = request("GET", "/healthz")
    for data in (request("POST", "/nope", body=smuggled),                 # unknown path
                 request("GET", "/metrics", body=smuggled),               # GET with a body
                 post(smuggled, token="wrong")):                          # refused POST
        reply = talk(port(server), data)
        assert len(reply.responses) == 1 and reply.closed, reply
        assert reply.responses[0].headers["connection"] == "close"


def test_transfer_encoding_with_content_length_or_on_http10_is_refused(serve):
    server, recorder = serve()
    chunked = b"5\r\nhello\r\n0\r\n\r\n"
    for data in (post(chunked, Transfer_Encoding="chunked", Content_Length="5"),
                 request("POST", "/post", {"Authorization": f"Bearer {TOKEN}",
                                           "Transfer-Encoding": "chunked"}, chunked, "HTTP/1.0")):
        reply = talk(port(server), data)
        assert [r.status for r in reply.responses] == [400] and reply.closed
    reply = talk(port(server), post(chunked, Transfer_Encoding="gzip, chunked"))
    assert [r.status for r in reply.responses] == [501] and reply.closed
    assert not recorder.bodies
    assert server.stats.rejected["bad_framing"] == 3


def test_chunked_bodies_are_read_under_the_same_cap(serve):
    server, recorder = serve()
    ok = talk(port(server), post(b"5\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n", Transfer_Encoding="chunked")
              + request("GET", "/healthz", {"Connection": "close"}))
    assert [r.status for r in ok.responses] == [200, 200], "kept alive after a complete body"
    assert recorder.bodies == [b"hello!!!"]
    big = b"".join(b"20\r\n" + b"x" * 32 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    reply = talk(port(server), post(big, Transfer_Encoding="chunked"))
    assert [r.status for r in reply.responses] == [413] and reply.closed
    assert recorder.bodies == [b"hello!!!"]


def test_an_oversized_content_length_is_refused_before_any_body_arrives(serve):
    server, recorder = serve()
    with connect(port(server)) as sock:
        sock.sendall(post(b"", Content_Length=str(200 * 2**20)))
        data, closed, _ = read_until_closed(sock, 5)
    assert [r.status for r in parse(data)] == [413] and closed
    assert server.stats.rejected["body_too_large"] == 1 and not recorder.bodies


def test_authentication_comes_before_the_body(serve):
    server, recorder = serve()
    with connect(port(server)) as sock:  # announces a body it never sends
        sock.sendall(post(b"", token="wrong", Content_Length="50"))
        data, closed, _ = read_until_closed(sock, 5)
    reply = parse(data)
    assert [r.status for r in reply] == [401] and closed
    assert reply[0].headers["www-authenticate"] == "Bearer"
    assert server.stats.rejected["unauthorized"] == 1 and not recorder.bodies


def test_expect_100_continue_is_answered_only_once_authenticated(serve):
    server, recorder = serve()
    with connect(port(server)) as sock:
        sock.sendall(post(b"", Expect="100-continue", Content_Length="5"))
        sock.settimeout(5)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 ")
    assert recorder.bodies == [b"hello"]


def test_pipelined_requests_are_answered_in_order(serve):
    server, _ = serve()
    reply = talk(port(server), request("GET", "/healthz") + request("GET", "/")
                 + request("GET", "/readyz", {"Connection": "close"}))
    assert [r.status for r in reply.responses] == [200, 200, 200] and reply.closed


@pytest.mark.parametrize(("data", "status"), [
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\nSSH-2.0-x\r\n", 405),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40), 400),  # a TLS hello
])
def test_other_protocols_are_refused_and_closed(serve, data, status):
    server, _ = serve()
    reply = talk(port(server), data)
    assert [r.status for r in reply.responses] == [status] and reply.closed


def test_a_huge_request_head_is_431(serve):
    server, _ = serve()
    reply = talk(port(server), request("GET", "/healthz", {"X-Big": "a" * 70000}))
    assert [r.status for r in reply.responses] == [431] and reply.closed


# -- methods and negotiation -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/"])
def test_head_answers_every_get_route_with_its_headers_and_no_body(serve, path):
    server, _ = serve()
    get = talk(port(server), request("GET", path, {"Connection": "close"})).responses[0]
    head = talk(port(server), request("HEAD", path, {"Connection": "close"}), head=True)
    assert head.closed and len(head.responses) == 1
    assert head.responses[0].status == get.status == 200
    assert head.responses[0].headers == get.headers and head.responses[0].body == b""
    assert int(get.headers["content-length"]) == len(get.body) > 0


def test_methods_a_route_does_not_take_get_405_with_allow(serve):
    server, _ = serve()
    replies = [talk(port(server), request(m, p, {"Connection": "close"})).responses[0]
               for m, p in (("POST", "/metrics"), ("DELETE", "/"), ("GET", "/post"))]
    assert [(r.status, r.headers["allow"]) for r in replies] == [
        (405, "GET, HEAD"), (405, "GET, HEAD"), (405, "POST")]
    assert talk(port(server), request("GET", "/nope", {"Connection": "close"})
                ).responses[0].status == 404


@pytest.mark.parametrize(("accept", "encoding", "openmetrics", "gzipped"), [
    ("application/openmetrics-text;version=1.0.0", "gzip", True, True),
    ("application/openmetrics-text;version=1.0.0;q=0, text/plain;q=0.5", "gzip;q=0", False, False),
    ("text/plain;q=0.2,application/openmetrics-text;version=1.0.0;q=0.9", "identity", True, False),
    ("*/*", "deflate, gzip;q=0.1", False, True),
])
def test_metrics_negotiation_honours_q_values_and_says_vary(serve, accept, encoding, openmetrics,
                                                            gzipped):
    server, _ = serve()
    reply = talk(port(server), request("GET", "/metrics", {"Accept": accept,
                                                            "Accept-Encoding": encoding,
                                                            "Connection": "close"}))
    response = reply.responses[0]
    assert response.headers["vary"] == "Accept, Accept-Encoding"
    assert response.headers["content-type"].startswith(
        "application/openmetrics-text" if openmetrics else "text/plain; version=0.0.4")
    assert (response.headers.get("content-encoding") == "gzip") is gzipped
    body = gzip.decompress(response.body) if gzipped else response.body
    assert body.endswith(b"# EOF\n") is openmetrics


# -- deadlines and the connection cap -----------------------------------------------------------

def test_an_idle_keep_alive_connection_is_closed_after_idle_seconds(serve):
    server, _ = serve(Limits(idle_seconds=0.5, head_seconds=5))
    with connect(port(server)) as sock:
        sock.sendall(request("GET", "/healthz"))
        data, closed, seconds = read_until_closed(sock, 10)
    assert [r.status for r in parse(data)] == [200]
    assert closed and seconds < 5
    assert server.stats.rejected["timeout"] == 0  # idling between requests is not an offence


def test_a_dripping_request_head_times_out_at_the_deadline(serve):
    server, _ = serve(Limits(head_seconds=1.0))
    start = time.monotonic()
    with connect(port(server)) as sock:
        reply = b""
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)  # paces the drip, well under head_seconds per byte
            if time.monotonic() - start > 6:
                break
        data, closed, _ = read_until_closed(sock, 5)
        reply = data
    assert closed and time.monotonic() - start < 6
    assert [r.status for r in parse(reply)] == [408]
    assert server.stats.rejected["timeout"] == 1


def test_a_connection_that_never_speaks_is_closed_and_counted(serve):
    server, _ = serve(Limits(head_seconds=0.5))
    with connect(port(server)) as sock:
        data, closed, seconds = read_until_closed(sock, 10)
    assert (data, closed) == (b"", True) and seconds < 5
    wait_until(lambda: server.stats.rejected["timeout"] == 1, message="timeout counted")


def test_when_full_the_longest_idle_connection_makes_room(serve):
    server, _ = serve(Limits(max_connections=4))
    reading = connect(port(server))
    reading.sendall(b"GET /healthz HTTP/1.1\r\n")  # half a request: waiting, but not idle
    wait_until(lambda: [c.phase for c in server.connections._open] == [Phase.READING],
               message="the half request read")
    idle = []
    for n in range(3):
        idle.append(connect(port(server)))
        wait_until(lambda n=n: server.stats.connections == n + 2, message="accepted")
    try:
        reply = talk(port(server), request("GET", "/metrics", {"Connection": "close"}))
        assert [r.status for r in reply.responses] == [200]
        assert server.stats.shed == 1
        oldest_idle = read_until_closed(idle[0], 5)
        assert oldest_idle[1], "the oldest idle connection was shed"
        reading.sendall(b"Host: x\r\n\r\n")  # the half request, older than all, survived
        assert reading.recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in [reading, *idle]:
            sock.close()


def test_a_scrape_gets_through_while_many_idle_connections_are_held(serve):
    server, _ = serve(Limits(max_connections=8))
    held = []
    try:
        for _ in range(40):
            held.append(socket.create_connection(("127.0.0.1", port(server))))
        wait_until(lambda: server.stats.shed >= 32, message="the flood shed")
        started = time.monotonic()
        reply = talk(port(server), request("GET", "/metrics", {"Connection": "close"}))
        assert [r.status for r in reply.responses] == [200]
        assert time.monotonic() - started < 2
        assert server.stats.connections <= 8
    finally:
        for sock in held:
            sock.close()


# -- web config: basic auth, headers, rate limit, the guarded route ------------------------------

def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def web_file(tmp_path: Path, text: str) -> WebConfigFile:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return WebConfigFile(str(path))


def test_basic_auth_guards_every_route_and_the_token_still_opens_the_post(serve, tmp_path):
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    server, recorder = serve(web=web_file(tmp_path, f"basic_auth_users:\n  alice: '{hashed}'\n"
                                                    "http_server_config:\n  headers:\n"
                                                    "    X-Content-Type-Options: nosniff\n"))

    def get(path: str, auth: str | None = None):
        return talk(port(server), request(
            "GET", path, {"Connection": "close", **({"Authorization": auth} if auth else {})})
        ).responses[0]

    for path in ("/metrics", "/healthz", "/", "/nope"):
        refused = get(path)
        assert refused.status == 401, path
        assert refused.headers["www-authenticate"] == 'Basic realm="agent-exporter"'
    assert get("/metrics", basic("alice", "wrong")).status == 401
    allowed = get("/metrics", basic("alice", "pw"))
    assert allowed.status == 200 and allowed.headers["x-content-type-options"] == "nosniff"

    by_token = talk(port(server), post(b"a", Connection="close")).responses[0]
    by_basic = talk(port(server), post(b"b", token=None, Authorization=basic("alice", "pw"),
                                       Connection="close")).responses[0]
    neither = talk(port(server), post(b"c", token=None, Connection="close")).responses[0]
    assert (by_token.status, by_basic.status, neither.status) == (200, 200, 401)
    assert neither.headers["www-authenticate"] == 'Basic realm="agent-exporter", Bearer'
    assert recorder.bodies == [b"a", b"b"]


def test_a_web_config_that_turns_bad_fails_closed(serve, tmp_path):
    web = web_file(tmp_path, "")
    server, _ = serve(web=web)
    (tmp_path / "web.yml").write_text("basic_auth_users: [oops]\n")
    reply = talk(port(server), request("GET", "/metrics", {"Connection": "close"}))
    assert reply.responses[0].status == 500


def test_the_rate_limit_answers_429(serve, tmp_path):
    server, _ = serve(web=web_file(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n"))
    statuses = [talk(port(server), request("GET", "/healthz", {"Connection": "close"}))
                .responses[0].status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert server.stats.rejected["rate_limited"] == 1


def test_an_unauthenticated_guarded_route_is_off_on_an_exposed_listener(serve):
    exposed, recorder = serve(listen="0.0.0.0:0", token=None)
    assert exposed.exposed
    reply = talk(port(exposed), post(b"x", token=None, Connection="close")).responses[0]
    assert (reply.status, reply.body) == (404, b"off: nothing authenticates POST /post\n")
    loopback, _ = serve(token=None)
    assert not loopback.exposed
    assert talk(port(loopback), post(b"y", token=None, Connection="close")
                ).responses[0].status == 200
    with_token, _ = serve(listen="0.0.0.0:0")
    assert talk(port(with_token), post(b"z", Connection="close")).responses[0].status == 200
    assert recorder.bodies == []


def test_requests_run_concurrently(serve):
    """One slow client does not hold up another (each connection has its own thread)."""
    server, _ = serve(Limits(head_seconds=5))
    slow = connect(port(server))
    slow.sendall(b"GET /healthz HTTP/1.1\r\n")
    try:
        done = threading.Event()
        threading.Thread(target=lambda: (talk(port(server), request(
            "GET", "/healthz", {"Connection": "close"})), done.set()), daemon=True).start()
        assert done.wait(3)
    finally:
        slow.close()


def test_a_flood_of_wrong_passwords_cannot_evict_a_scrapers_credentials(monkeypatch):
    users = {"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(4))}
    auth = BasicAuth()
    assert auth.check(users, basic("prometheus", "right"))
    for n in range(300):
        assert not auth.check(users, basic("prometheus", f"guess-{n}"))
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: pytest.fail("bcrypt ran again"))
    assert auth.check(users, basic("prometheus", "right"))
    assert not auth.check(users, basic("prometheus", "guess-299"))
