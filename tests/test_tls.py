"""Redis over TLS: real servers with only a TLS port that want a client certificate. The
exporter reads stream events and runs its key checks through `rediss://`, and follows a
failover of TLS-only Sentinels through `rediss+sentinel://`."""
from __future__ import annotations

from pathlib import Path

import pytest
import redis

from exporter.publisher import Publisher
from tests.support.procs import NO_COLLECTORS, value, wait_until
from tests.support.redis_tls import RedisTls, TlsRedisServer
from tests.support.sentinel import SentinelSet

pytestmark = pytest.mark.integration

CONFIG = """
source: streams
key_checks:
  - key: queue:jobs
    type: list
    metric: jobs_waiting
    help: Jobs waiting.
"""


def test_the_exporter_reads_events_and_keys_over_tls_with_a_client_certificate(
        tmp_path: Path, start_exporter) -> None:
    tls = RedisTls.make(tmp_path / "tls")
    server = TlsRedisServer(tmp_path / "redis", tls).start()
    try:
        without_certificate = redis.Redis.from_url(
            f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={tls.ca}")
        with pytest.raises(redis.ConnectionError):  # the server insists on a client certificate
            without_certificate.ping()

        exporter = start_exporter(server.url, "--no-collector.host", "--no-collector.gpu",
                                  config=CONFIG)
        server.client().rpush("queue:jobs", "a", "b", "c")
        publisher = Publisher(server.url, transport="streams")
        for i in range(50):
            publisher.task_update(f"t{i}", "agent-tls", "done", 2.0)
        wait_until(lambda: value(exporter.samples(), "agent_tasks_total", agent="agent-tls",
                                 status="done") == 50, timeout=20, message="events over TLS")
        s = exporter.samples()
        assert value(s, "jobs_waiting") == 3
        assert value(s, "agent_exporter_redis_up") == 1
        assert value(s, "agent_exporter_collector_success", collector="redis_state") == 1
        wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_pending_entries",
                                 stream="events:tasks:updates") == 0, timeout=20,
                   message="acknowledged by a checkpoint")
    finally:
        server.stop()


def test_the_exporter_follows_a_failover_of_tls_sentinels(tmp_path: Path, start_exporter) -> None:
    sentinels = SentinelSet(tmp_path / "redis", RedisTls.make(tmp_path / "tls")).start()
    try:
        exporter = start_exporter(sentinels.url, *NO_COLLECTORS, config="source: streams\n")
        publisher = Publisher(sentinels.url, transport="streams")

        def tasks() -> float | None:
            return value(exporter.samples(), "agent_tasks_total", agent="a", status="done")

        for i in range(100):
            publisher.task_update(f"t{i}", "a", "done")
        wait_until(lambda: tasks() == 100, timeout=20, message="events before the failover")
        assert sentinels.master.client().wait(1, 5000) == 1  # the replica has them
        sentinels.fail_master()
        wait_until(lambda: publisher.task_update("first", "a", "done") is None, timeout=30,
                   message="the publisher on the new master")
        for i in range(99):
            publisher.task_update(f"u{i}", "a", "done")
        wait_until(lambda: tasks() == 200, timeout=30, message="events after it, on the new master")
        wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_pending_entries",
                                 stream="events:tasks:updates") == 0, timeout=20,
                   message="all acknowledged on the new master")
        assert tasks() == 200
        assert value(exporter.samples(), "agent_exporter_redis_reconnects_total") >= 1
    finally:
        sentinels.stop()
