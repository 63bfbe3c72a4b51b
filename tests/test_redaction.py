"""Credentials never reach a log line, an error message or a page."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import requests

from exporter.redact import RedactingFilter, redact, url_secrets
from tests.support.procs import REPO, RedisServer, wait_until

PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(("text", "expected"), [
    ("reading from redis://:pw@10.0.0.1:6379/0", "reading from redis://:***@10.0.0.1:6379/0"),
    ("rediss://user:p%40ss@host/1 and unix://u:x@/tmp/r.sock",
     "rediss://user:***@host/1 and unix://u:***@/tmp/r.sock"),
    ("redis://host:6379/0?password=pw&db=1", "redis://host:6379/0?password=***&db=1"),
    ("redis://host:6379/0 has no password", "redis://host:6379/0 has no password"),
])
def test_passwords_in_urls_are_masked(text, expected):
    assert redact(text) == expected


def test_named_secrets_are_masked_as_written_and_decoded():
    secrets = url_secrets("redis://:p%40ss@host/0")
    assert secrets == ["p%40ss", "p@ss"]
    assert redact("AUTH p@ss failed; token abc", [*secrets, "abc"]) == "AUTH *** failed; token ***"


def test_the_log_filter_masks_messages_arguments_and_tracebacks():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "lost %s: %s", (
        f"redis://:{PASSWORD}@h/0", "boom"), None)
    try:
        raise ConnectionError(f"cannot reach redis://u:{PASSWORD}@h/0")
    except ConnectionError:
        record.exc_info = sys.exc_info()
    RedactingFilter([PASSWORD]).filter(record)
    formatted = logging.Formatter().format(record)
    assert PASSWORD not in formatted
    assert "lost redis://:***@h/0: boom" in formatted and "redis://u:***@h/0" in formatted


def test_no_password_in_the_log_the_pages_or_a_config_error(tmp_path, start_exporter):
    server = RedisServer(tmp_path / "redis", password=PASSWORD).start()
    try:
        exporter = start_exporter(server.url)
        wrong = start_exporter(f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0", ready=False)
        pages = [requests.get(exporter.url + path, timeout=10).text
                 for path in ("/", "/metrics", "/readyz", "/healthz", "/nope")]
        server.stop()  # the sources now log their connection errors
        wait_until(lambda: "ConnectionError" in exporter.proc.log(), timeout=20,
                   message="the sources to log the lost connection")
        wait_until(lambda: "pubsub: " in wrong.proc.log(), timeout=20,
                   message="the wrongly authenticated sources to log why")
    finally:
        server.stop()
    log = exporter.proc.log()
    assert f"redis://:***@127.0.0.1:{server.port}/0" in log
    for text in (log, wrong.proc.log(), *pages):
        assert PASSWORD not in text

    result = subprocess.run([sys.executable, "-m", "exporter", "--redis-url",
                             f"redis://:{PASSWORD}@127.0.0.1:99999/0"],
                            capture_output=True, text=True, timeout=30, cwd=REPO, check=False)
    assert result.returncode == 2 and "bad port in 'redis://:***@127.0.0.1:99999/0'" in \
        result.stderr
    assert PASSWORD not in result.stderr
