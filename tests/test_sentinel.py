"""Redis that survives a node: the exporter on a `redis+sentinel://` URL follows a failover
(a master SIGKILLed, three real Sentinels promoting its replica) without a restart.

Streams stay exact across it even where asynchronous replication lost the tail of the master's
writes: the checkpoint in flight waits for a replica (WAIT) and never counts as done, and the
entries the promoted replica delivers again are recognised. Pub/sub re-subscribes and counts
what it missed.
"""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis

from exporter.publisher import Publisher
from exporter.redis_client import client as redis_client
from tests.support.procs import NO_COLLECTORS, Exporter, value, wait_until
from tests.support.sentinel import PASSWORD, SENTINEL_PASSWORD, SentinelSet

pytestmark = pytest.mark.integration

STREAM, GROUP = "events:tasks:updates", "agent-exporter"
STREAMS = """
source: streams
streams:
  checkpoint_seconds: 1
  block_ms: 100
  replica_wait_seconds: 120
"""


@pytest.fixture()
def sentinels(tmp_path: Path):
    ha = SentinelSet(tmp_path / "redis").start()
    yield ha
    ha.stop()


def add_tasks(client: redis.Redis, first: int, count: int, published: Counter) -> None:
    """XADD `count` task events straight to a server, counting them by (agent, status)."""
    pipe = client.pipeline(transaction=False)
    for i in range(first, first + count):
        agent, status = f"agent-{i % 5}", "done" if i % 4 else "failed"
        pipe.xadd(STREAM, {"data": orjson.dumps({"agent": agent, "status": status})})
        published[agent, status] += 1
    pipe.execute()


def counted(exporter: Exporter) -> Counter:
    return Counter({(dict(labels)["agent"], dict(labels)["status"]): v
                    for (name, labels), v in exporter.samples().items()
                    if name == "agent_tasks_total"})


def test_streams_stay_exact_when_the_master_dies_with_a_checkpoint_unreplicated(
        sentinels: SentinelSet, tmp_path: Path) -> None:
    exporter = Exporter(tmp_path, sentinels.url, NO_COLLECTORS, config=STREAMS,
                        env={"AGENT_EXPORTER_CONSUMER": "e1"}).wait_ready()
    master = sentinels.master.client()
    published: Counter = Counter()
    try:
        add_tasks(master, 0, 1000, published)  # A: read, checkpointed, replicated
        wait_until(lambda: counted(exporter) == published, timeout=30, message="A counted")
        wait_until(lambda: master.xpending(STREAM, GROUP)["pending"] == 0, message="A acked")

        # B: read and its delivery replicated, not yet checkpointed when the exporter stops
        for attempt in range(20):
            add_tasks(master, 1000 + 200 * attempt, 200, published)
            wait_until(lambda: counted(exporter) == published, timeout=30, message="B counted")
            exporter.proc.signal(signal.SIGSTOP)
            if master.xpending(STREAM, GROUP)["pending"]:
                break
            exporter.proc.signal(signal.SIGCONT)
        else:
            pytest.fail("the exporter checkpointed every batch before it could be stopped")
        before_c = sum(published.values())
        add_tasks(master, before_c, 300, published)  # C: in the stream, not yet delivered
        assert master.wait(1, 10_000) == 1  # the replica has everything so far

        # The replica drops off and cannot come back: what follows stays on the master.
        sentinels.replica.client().config_set("masterauth", "not-the-password")
        master.client_kill_filter(_type="replica")
        wait_until(lambda: not master.execute_command("ROLE")[2], message="no replica listed")
        exporter.proc.signal(signal.SIGCONT)  # reads C; checkpoints B and C; WAITs in vain
        wait_until(lambda: counted(exporter) == published, timeout=30, message="C counted")
        wait_until(lambda: any(c["cmd"] == "wait" for c in master.client_list()), timeout=30,
                   message="the checkpoint waiting for a replica")

        replica = sentinels.replica.client()  # the checkpoint acknowledged B and C here only:
        assert master.xpending(STREAM, GROUP)["pending"] == 0
        # there B is still pending, and C undelivered (but for the first entry, if the read the
        # stopped exporter had in flight took it)
        assert replica.xpending(STREAM, GROUP)["pending"] in (200, 201)
        assert replica.xlen(STREAM) == sum(published.values())

        failover_seconds = sentinels.fail_master()
        killed = time.monotonic() - failover_seconds
        new_master = replica

        wait_until(lambda: value(exporter.samples(), "agent_exporter_redis_up") == 1,
                   timeout=60, message="the exporter on the new master")
        reading_seconds = time.monotonic() - killed
        publisher = Publisher(sentinels.url, transport="streams")
        for i in range(500):  # D, through the Sentinels
            agent, status = f"agent-{i % 5}", "done"
            publisher.task_update(f"d{i}", agent, status)
            published[agent, status] += 1
        wait_until(lambda: counted(exporter) >= published, timeout=30, message="D counted")
        wait_until(lambda: new_master.xpending(STREAM, GROUP)["pending"] == 0, timeout=30,
                   message="everything acknowledged on the new master")
        s = exporter.samples()
        assert counted(exporter) == published  # B and C once, not twice
        assert value(s, "agent_exporter_redis_reconnects_total") >= 1
        assert value(s, "agent_exporter_checkpoints_total", result="error") >= 1
        assert value(s, "agent_exporter_stream_entries_read_total", stream=STREAM) == \
            sum(published.values())
        print(f"failover {failover_seconds:.1f} s; exporter reading again "
              f"{reading_seconds:.1f} s after the kill")
        log = exporter.proc.log()
        assert PASSWORD not in log and SENTINEL_PASSWORD not in log
        assert "redis+sentinel://:***@127.0.0.1:" in log
    finally:
        exporter.proc.signal(signal.SIGCONT)
        exporter.stop()
        master.close()


def test_pubsub_resubscribes_after_a_failover_and_counts_what_it_missed(
        sentinels: SentinelSet, tmp_path: Path) -> None:
    exporter = Exporter(tmp_path, sentinels.url, NO_COLLECTORS).wait_ready()
    publisher = Publisher(redis_client(sentinels.url, timeout=2.0), publisher_id="swarm")
    attempts = [0]
    stop = threading.Event()

    def publish() -> None:
        while not stop.wait(0.005):
            attempts[0] += 1  # a failed attempt spends its sequence number: a lost event
            try:
                publisher.task_update("t", "agent-1", "done")
            except redis.RedisError:
                continue

    def received() -> float:
        return value(exporter.samples(), "agent_tasks_total", agent="agent-1", status="done") or 0

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        wait_until(lambda: received() >= 200, timeout=30, message="events before the failover")
        failover_seconds = sentinels.fail_master()
        killed = time.monotonic() - failover_seconds
        wait_until(lambda: value(exporter.samples(), "agent_exporter_redis_reconnects_total"),
                   timeout=60, message="re-subscribed")
        resubscribed_seconds = time.monotonic() - killed
        after = received()
        wait_until(lambda: received() >= after + 200, timeout=30, message="events after it")
    finally:
        stop.set()
        thread.join()
    try:
        publisher.task_update("t", "agent-1", "done")  # the last one closes the gap
        attempts[0] += 1

        def accounted() -> float:
            lost = value(exporter.samples(), "agent_exporter_events_lost_total", source=STREAM)
            return received() + (lost or 0)

        wait_until(lambda: accounted() == attempts[0], timeout=30,
                   message="received + lost == published")
        assert value(exporter.samples(), "agent_exporter_events_lost_total", source=STREAM) > 0
        print(f"failover {failover_seconds:.1f} s; re-subscribed {resubscribed_seconds:.1f} s "
              f"after the kill; {attempts[0]} published, {received():.0f} received")
    finally:
        exporter.stop()
