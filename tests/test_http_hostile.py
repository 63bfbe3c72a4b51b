"""The HTTP surface as a hostile or careless client meets it, through the real command line:
lying Content-Lengths, chunked and smuggled bodies, bodies before credentials, dripping heads,
connection floods under a low file-descriptor limit, HEAD and q-values. Each test prints what it
measured (pytest -s shows it)."""
from __future__ import annotations

import gzip
import os
import resource
import select
import socket
import time

import psutil
import pytest
import requests

from exporter.alert_bridge import TOKEN_ENV
from tests.support.alerts import alert, payload
from tests.support.procs import Exporter, value, wait_until
from tests.support.rawhttp import connect, parse, read_until_closed, request, talk
from tests.support.subscriber import Subscriber

NO_COLLECTORS = ("--no-collector.host", "--no-collector.gpu", "--no-collector.redis_state")
TOKEN = "hostile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def exporter(redis_url, start_exporter) -> Exporter:
    return start_exporter(redis_url, *NO_COLLECTORS, env={TOKEN_ENV: TOKEN})


@pytest.fixture()
def subscriber(redis_url):
    sub = Subscriber(redis_url)
    yield sub
    sub.close()


def rss_mb(exporter: Exporter) -> float:
    return psutil.Process(exporter.proc.pid).memory_info().rss / 2**20


def rejected(exporter: Exporter, reason: str) -> float:
    return value(exporter.samples(), "agent_exporter_http_requests_rejected_total",
                 reason=reason) or 0


def answer_before_the_body(exporter: Exporter, head: bytes, junk_bytes: int = 0) -> tuple[
        list[int], bool]:
    """Send a request head, read the answer (which must not wait for a body), then offer junk."""
    with connect(exporter.port) as sock:
        sock.sendall(head)
        data, closed, _ = read_until_closed(sock, 10)
        try:
            sock.sendall(b"x" * junk_bytes)
        except OSError:
            pass
    return [r.status for r in parse(data)], closed


def test_lying_content_lengths_are_refused_before_any_body_is_read(exporter):
    before = rss_mb(exporter)
    for length, status in (("-1", 400), ("abc", 400), ("1, 2", 400),
                           (str(200 * 2**20), 413), ("9" * 20, 413)):  # valid token, huge bodies
        statuses, closed = answer_before_the_body(
            exporter, request("POST", "/alertmanager", {**AUTH, "Content-Length": length}),
            junk_bytes=8 * 2**20)
        assert (statuses, closed) == ([status], True), length
    after = rss_mb(exporter)
    print(f"\nRSS {before:.1f} MB before, {after:.1f} MB after the lying requests")
    assert after - before < 20
    assert rejected(exporter, "malformed") == 3
    assert rejected(exporter, "body_too_large") == 2


def test_credentials_come_before_the_body(exporter):
    started = time.monotonic()
    statuses, closed = answer_before_the_body(
        exporter, request("POST", "/alertmanager", {"Content-Length": str(100 * 2**20)}))
    assert (statuses, closed) == ([401], True)
    assert time.monotonic() - started < 5, "answered without waiting for the body"
    assert rejected(exporter, "unauthorized") == 1


def test_a_chunked_alert_is_published_and_an_oversized_one_refused(redis_url, start_exporter,
                                                                   subscriber):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, env={TOKEN_ENV: TOKEN},
                              config="alert_bridge:\n  max_body_bytes: 4096\n")
    body = payload(alert("Chunked"))
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100])
                       for i in range(0, len(body), 100)) + b"0\r\n\r\n"
    reply = talk(exporter.port, request("POST", "/alertmanager", {
        **AUTH, "Transfer-Encoding": "chunked", "Connection": "close"}, chunked))
    assert [r.status for r in reply.responses] == [200]
    assert [m["type"] for _, m in subscriber.wait_for(1)] == ["Chunked"]

    big = b"1000\r\n" + b"x" * 4096 + b"\r\n1\r\nx\r\n0\r\n\r\n"
    reply = talk(exporter.port, request("POST", "/alertmanager", {
        **AUTH, "Transfer-Encoding": "chunked"}, big))
    assert [r.status for r in reply.responses] == [413] and reply.closed


def test_no_body_is_ever_executed_as_a_request(exporter, subscriber):
    smuggled = request("POST", "/alertmanager", AUTH, payload(alert("Smuggled")))
    carriers = [
        request("POST", "/unknown", body=smuggled),
        request("GET", "/metrics", body=smuggled),
        request("POST", "/alertmanager", {"Authorization": "Bearer wrong"}, smuggled),
        request("POST", "/alertmanager", {**AUTH, "Transfer-Encoding": "chunked",
                                          "Content-Length": "0"}, smuggled),
        request("POST", "/alertmanager", {**AUTH, "Content-Length": "-1"}, smuggled),
    ]
    for carrier in carriers:
        reply = talk(exporter.port, carrier)
        assert len(reply.responses) == 1 and reply.closed, (carrier[:60], reply)
    # a legitimate alert afterwards is the only one that arrives
    assert talk(exporter.port, request("POST", "/alertmanager", {**AUTH, "Connection": "close"},
                                       payload(alert("Legit")))).responses[0].status == 200
    assert [m["type"] for _, m in subscriber.wait_for(1)] == ["Legit"]
    assert [m["type"] for _, m in subscriber.poll()] == ["Legit"]


def test_dripping_request_heads_time_out_while_scrapes_go_on(exporter):
    """Slowloris: five connections each send a header byte every second, a sixth says nothing;
    the default 10 s head deadline closes them all, and /metrics answers throughout."""
    silent = connect(exporter.port)
    slow = [connect(exporter.port) for _ in range(5)]
    for sock in slow:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    slow.append(silent)
    started = time.monotonic()
    answers: dict[socket.socket, bytes] = {}
    scrape_seconds = []
    while len(answers) < len(slow) and time.monotonic() - started < 30:
        readable, _, _ = select.select([s for s in slow if s not in answers], [], [], 1.0)
        for sock in readable:
            answers[sock] = read_until_closed(sock, 5)[0]
        for sock in slow:
            if sock not in answers and sock is not silent:
                try:
                    sock.sendall(b"X")
                except OSError:
                    answers[sock] = b""
        t = time.monotonic()
        assert requests.get(exporter.url + "/metrics", timeout=5).status_code == 200
        scrape_seconds.append(time.monotonic() - t)
    elapsed = time.monotonic() - started
    for sock in slow:
        sock.close()
    print(f"\nslowloris: closed after {elapsed:.1f} s; scrapes meanwhile: "
          f"max {max(scrape_seconds) * 1000:.0f} ms")
    assert len(answers) == 6 and 9 < elapsed < 20
    assert answers.pop(silent) == b""  # closed without a word
    assert all(parse(a)[0].status == 408 for a in answers.values() if a)
    assert rejected(exporter, "timeout") == 6


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def cpu_seconds_over(process: psutil.Process, window: float) -> float:
    before = sum(process.cpu_times()[:2])
    time.sleep(window)  # a measuring window, not a wait for anything
    return sum(process.cpu_times()[:2]) - before


def test_an_idle_connection_flood_under_a_low_fd_limit_leaves_room_for_a_scrape(
        redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, preexec_fn=limit_descriptors)
    process = psutil.Process(exporter.proc.pid)
    assert value(exporter.samples(), "agent_exporter_http_connections_limit") == 64
    held = []
    try:
        for _ in range(600):
            held.append(socket.create_connection(("127.0.0.1", exporter.port), timeout=10))
        wait_until(lambda: value(exporter.samples(), "agent_exporter_http_connections_shed_total")
                   >= 600 - 64, timeout=30, message="the flood shed down to the cap")
        started = time.monotonic()
        assert requests.get(exporter.url + "/metrics", timeout=10).status_code == 200
        waited = time.monotonic() - started
        idle_cpu = cpu_seconds_over(process, 2.0)
        samples = exporter.samples()
        print(f"\n600 idle connections held, limit 64: a scrape took {waited * 1000:.0f} ms; "
              f"exporter CPU {idle_cpu:.3f} s over 2 s; {process.num_fds()} fds open; "
              f"RSS {process.memory_info().rss / 2**20:.1f} MB")
        assert waited < 2
        assert idle_cpu < 0.5, "no spinning while the connections are held"
        assert value(samples, "agent_exporter_http_connections") <= 64 + 1
        assert process.num_fds() < 200

    finally:
        for sock in held:
            sock.close()

    # Descriptors run out while the exporter runs: the limit drops to the lowest free descriptor,
    # so accept fails with EMFILE for connections waiting in the backlog, and with nothing left
    # to shed. The exporter backs off instead of spinning, and recovers when descriptors return.
    wait_until(lambda: value(exporter.samples(), "agent_exporter_http_connections") <= 1,
               message="the held connections closed")
    lowest_free = min(set(range(256)) - {int(fd) for fd in os.listdir(f"/proc/{process.pid}/fd")})
    process.rlimit(psutil.RLIMIT_NOFILE, (lowest_free, 256))
    waiting = [socket.create_connection(("127.0.0.1", exporter.port), timeout=10)
               for _ in range(5)]
    try:
        wait_until(lambda: "accept failed (Too many open files)" in exporter.proc.log(),
                   timeout=20, message="EMFILE on accept")
        emfile_cpu = cpu_seconds_over(process, 2.0)
        process.rlimit(psutil.RLIMIT_NOFILE, (256, 256))
        started = time.monotonic()
        wait_until(lambda: requests.get(exporter.url + "/healthz", timeout=5).status_code == 200,
                   timeout=10, message="scrapes after descriptors came back")
        print(f"descriptors exhausted: exporter CPU {emfile_cpu:.3f} s over 2 s; answering "
              f"again {(time.monotonic() - started) * 1000:.0f} ms after they came back")
        assert emfile_cpu < 0.2, "no spinning on accept while descriptors are exhausted"
    finally:
        for sock in waiting:
            sock.close()


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/"])
def test_head_answers_every_get_route(exporter, path):
    head = requests.head(exporter.url + path, timeout=10)
    get = requests.get(exporter.url + path, timeout=10)
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and int(head.headers["Content-Length"]) > 0
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    if path != "/metrics":  # metrics move between the two requests
        assert head.headers["Content-Length"] == get.headers["Content-Length"]


def test_q_values_and_vary_through_the_cli(exporter):
    refused_om = requests.get(exporter.url + "/metrics", timeout=10, headers={
        "Accept": "application/openmetrics-text;version=1.0.0;q=0, text/plain;q=0.5",
        "Accept-Encoding": "gzip;q=0"})
    assert refused_om.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Content-Encoding" not in refused_om.headers
    assert refused_om.headers["Vary"] == "Accept, Accept-Encoding"
    preferred_om = requests.get(exporter.url + "/metrics", timeout=10, stream=True, headers={
        "Accept": "text/plain;q=0.1, application/openmetrics-text;version=1.0.0;q=0.9",
        "Accept-Encoding": "identity;q=0.5, gzip"})
    assert preferred_om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert preferred_om.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(preferred_om.raw.read()).endswith(b"# EOF\n")
