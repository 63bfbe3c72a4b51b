"""Delivery you can trust: streams with checkpoints, loss made visible, bounded memory, lifecycle."""
from __future__ import annotations

import random
import signal
import threading
import time

import orjson
import pytest
import redis
import requests

from exporter.publisher import Publisher
from exporter.sources.pubsub import CANARY_MISSES, CANARY_SECONDS, PubSubSource
from tests.support.procs import NO_COLLECTORS, Exporter, RedisServer, value, wait_until

pytestmark = pytest.mark.integration

FAST_STREAMS = """
source: streams
streams:
  checkpoint_seconds: 0.2
  claim_idle_seconds: 1
  block_ms: 100
"""


def total(samples: dict, metric: str) -> float:
    return sum(v for (name, _), v in samples.items() if name == metric)


def scrape_total(exporter: Exporter, metric: str) -> float:
    return total(exporter.samples(), metric)


def publish_tasks(url: str, count: int, batch: int = 1000, agents: int = 7) -> None:
    """`count` task events over streams, spread over a few agents and two statuses."""
    client = redis.Redis.from_url(url)
    for start in range(0, count, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + batch, count)):
            event = {"taskId": f"t{i}", "agent": f"agent-{i % agents}",
                     "status": "done" if i % 5 else "failed", "duration_seconds": i % 3000}
            pipe.xadd("events:tasks:updates", {"data": orjson.dumps(event)})
        pipe.execute()
    client.close()


def test_streams_count_events_added_before_the_first_start(redis_url, start_exporter):
    Publisher(redis_url, transport="streams").task_update("early", "a", "done", 3)
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS)
    Publisher(redis_url, transport="streams").task_update("late", "a", "done", 4)
    wait_until(lambda: value(exporter.samples(), "agent_tasks_total", agent="a", status="done") == 2)
    wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_entries_acked_total",
                             stream="events:tasks:updates") == 2, message="acknowledged")
    wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_pending_entries",
                             stream="events:tasks:updates") == 0)
    assert value(exporter.samples(), "agent_exporter_stream_entries_read_total",
                 stream="events:tasks:updates") == 2


def test_a_stream_entry_without_a_data_field_is_counted_invalid_and_acknowledged(redis_url,
                                                                                start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS)
    client = redis.Redis.from_url(redis_url)
    client.xadd("events:tasks:updates", {"payload": b'{"agent": "a", "status": "done"}'})
    client.xadd("events:tasks:updates", {"data": b'{"agent": "a", "status": "done"}'})
    wait_until(lambda: value(exporter.samples(), "agent_tasks_total", agent="a", status="done") == 1)
    wait_until(lambda: value(exporter.samples(), "agent_exporter_events_invalid_total",
                             source="events:tasks:updates", reason="missing_field") == 1)
    wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_pending_entries",
                             stream="events:tasks:updates") == 0, message="both acknowledged")


def test_kill_9_five_times_loses_nothing_and_counts_nothing_twice(redis_url, tmp_path):
    """100 000 events published while the exporter is killed and restarted at random moments.

    Every scrape must be at least the one before (Prometheus would read a drop as a reset), and at
    the end every counter equals what was published."""
    published = 100_000
    rng = random.Random(7)
    publisher = threading.Thread(target=publish_tasks, args=(redis_url, published))
    publisher.start()
    port = None
    last_seen = 0.0
    for _ in range(5):
        exporter = Exporter(tmp_path, redis_url, NO_COLLECTORS, config=FAST_STREAMS,
                            env={"AGENT_EXPORTER_CONSUMER": "stable"}, port=port).wait_ready()
        port = exporter.port
        deadline = time.monotonic() + rng.uniform(0.5, 2.5)
        while time.monotonic() < deadline:
            seen = scrape_total(exporter, "agent_tasks_total")
            assert seen >= last_seen, f"counter went back from {last_seen} to {seen}"
            last_seen = seen
        exporter.proc.kill()  # SIGKILL: no shutdown, no final checkpoint
    publisher.join()
    exporter = Exporter(tmp_path, redis_url, NO_COLLECTORS, config=FAST_STREAMS,
                        env={"AGENT_EXPORTER_CONSUMER": "stable"}, port=port).wait_ready()
    try:
        wait_until(lambda: scrape_total(exporter, "agent_tasks_total") >= published, timeout=60,
                   message="all events counted")
        s = exporter.samples()
        assert total(s, "agent_tasks_total") == published
        assert total(s, "agent_task_duration_seconds_count") == published
        for agent in range(7):
            expected_done = sum(1 for i in range(published) if i % 7 == agent and i % 5)
            assert value(s, "agent_tasks_total", agent=f"agent-{agent}", status="done") == expected_done
        assert total(s, "agent_tasks_total") >= last_seen
    finally:
        exporter.stop()


def test_entries_whose_reply_was_lost_with_the_connection_are_read_again(redis_url, start_exporter):
    """Redis moves entries into the consumer's pending list when it serves XREADGROUP; if the
    connection drops before the reply arrives, the reconnected exporter must read them again."""
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS,
                              env={"AGENT_EXPORTER_CONSUMER": "c1"})
    publish_tasks(redis_url, 100)
    done = lambda: scrape_total(exporter, "agent_tasks_total")  # noqa: E731
    wait_until(lambda: done() == 100, message="the first 100 applied")
    client = redis.Redis.from_url(redis_url)
    # Reading as the exporter's consumer stands in for its own lost reply, so first let a
    # checkpoint acknowledge the 100: a checkpoint drops the consumer's whole pending list.
    wait_until(lambda: client.xpending("events:tasks:updates", "agent-exporter")["pending"] == 0,
               timeout=30, message="the first 100 acknowledged")
    pipe = client.pipeline(transaction=True)  # the exporter's blocked read is served after EXEC
    for _ in range(5):
        pipe.xadd("events:tasks:updates", {"data": orjson.dumps({"agent": "x", "status": "done"})})
    pipe.xreadgroup("agent-exporter", "c1", {"events:tasks:updates": ">"}, count=5)
    *_, delivered = pipe.execute()
    assert len(delivered[0][1]) == 5  # delivered to the exporter's consumer, never seen by it
    client.client_kill_filter(_type="normal", skipme=True)  # the exporter's connections drop
    wait_until(lambda: value(exporter.samples(), "agent_exporter_redis_reconnects_total") >= 1,
               message="a reconnect")
    wait_until(lambda: done() == 105, timeout=30,
               message="the 5 entries delivered before the drop applied")
    wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_pending_entries",
                             stream="events:tasks:updates") == 0, message="all acknowledged")
    assert done() == 105


def test_two_exporters_share_a_group_and_claim_a_dead_consumers_entries(redis_url, start_exporter):
    first = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS,
                           env={"AGENT_EXPORTER_CONSUMER": "one"})
    second = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS,
                            env={"AGENT_EXPORTER_CONSUMER": "two"})
    publish_tasks(redis_url, 20_000)

    def both() -> float:
        return scrape_total(first, "agent_tasks_total") + scrape_total(second, "agent_tasks_total")

    wait_until(lambda: both() == 20_000, timeout=30, message="the group's totals add up")
    assert scrape_total(first, "agent_tasks_total") > 0 and scrape_total(second, "agent_tasks_total") > 0

    # a consumer that takes entries and dies before acknowledging them
    client = redis.Redis.from_url(redis_url)
    publish_tasks(redis_url, 300, batch=300)
    wait_until(lambda: both() == 20_300, timeout=30)
    Publisher(client, transport="streams").publish_many(
        "events:tasks:updates", [{"agent": "ghost", "status": "done"} for _ in range(50)])
    ghost_read = 0
    while ghost_read < 50:  # race the exporters for the new entries as consumer "ghost"
        replies = client.xreadgroup("agent-exporter", "ghost", {"events:tasks:updates": ">"}, count=50)
        ghost_read += sum(len(entries) for _, entries in replies or [])
        if both() + ghost_read >= 20_350:
            break
    wait_until(lambda: both() == 20_350, timeout=30, message="the ghost's entries are claimed")
    claimed = total(first.samples(), "agent_exporter_stream_entries_claimed_total") + \
        total(second.samples(), "agent_exporter_stream_entries_claimed_total")
    assert claimed == ghost_read


def test_a_killed_consumers_checkpoint_plus_the_survivor_equals_what_was_published(redis_url, start_exporter):
    victim = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS,
                            env={"AGENT_EXPORTER_CONSUMER": "victim"})
    survivor = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS,
                              env={"AGENT_EXPORTER_CONSUMER": "survivor"})
    publishing = threading.Thread(target=publish_tasks, args=(redis_url, 30_000))
    publishing.start()
    wait_until(lambda: scrape_total(victim, "agent_tasks_total") > 5000, timeout=30)
    victim.proc.kill()
    publishing.join()
    client = redis.Redis.from_url(redis_url)

    def victims_checkpoint() -> float:
        blob = client.get("agent-exporter:checkpoint:agent-exporter:victim")
        rows = orjson.loads(blob)["agent_tasks_total"]["rows"] if blob else []
        return sum(row[1] for row in rows)

    wait_until(lambda: scrape_total(survivor, "agent_tasks_total") + victims_checkpoint() == 30_000,
               timeout=30, message="survivor claims what the victim never checkpointed")
    pending = client.xpending("events:tasks:updates", "agent-exporter")
    wait_until(lambda: client.xpending("events:tasks:updates", "agent-exporter")["pending"] == 0,
               message=f"nothing left pending (was {pending['pending']})")


def test_sigterm_applies_checkpoints_and_exits_0(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS,
                              config=FAST_STREAMS.replace("0.2", "60"))  # only the final one
    publish_tasks(redis_url, 1000)
    wait_until(lambda: scrape_total(exporter, "agent_tasks_total") == 1000)
    started = time.monotonic()
    assert exporter.stop() == 0
    assert time.monotonic() - started < 10
    client = redis.Redis.from_url(redis_url)
    assert client.xpending("events:tasks:updates", "agent-exporter")["pending"] == 0
    assert client.exists("agent-exporter:checkpoint:agent-exporter:" + __import__("socket").gethostname())


def test_pubsub_overflow_drop_is_counted_not_silent(tmp_path, start_exporter):
    """A subscriber that falls behind is cut off by Redis' output-buffer limit: the events lost
    are counted from the publisher's sequence gaps, and the reconnect is counted too."""
    server = RedisServer(tmp_path / "tiny", extra=["--client-output-buffer-limit", "pubsub 64kb 0 0"]).start()
    try:
        exporter = start_exporter(server.url, *NO_COLLECTORS)
        publisher = Publisher(server.url, publisher_id="burst")
        publisher.task_update("first", "a", "done")
        wait_until(lambda: value(exporter.samples(), "agent_tasks_total", agent="a", status="done") == 1)
        exporter.proc.signal(signal.SIGSTOP)  # a subscriber that stops reading
        for _ in range(10):
            publisher.publish_many("events:tasks:updates",
                                   [{"agent": "a", "status": "done"} for _ in range(5000)])
        exporter.proc.signal(signal.SIGCONT)
        wait_until(lambda: value(exporter.samples(), "agent_exporter_redis_reconnects_total") >= 1,
                   timeout=20, message="the cut-off connection is noticed and re-established")
        wait_until(lambda: requests.get(exporter.url + "/readyz").status_code == 200, timeout=20)
        publisher.task_update("last", "a", "done")  # closes the gap
        sent = 1 + 10 * 5000 + 1

        def accounted() -> float:
            s = exporter.samples()
            return (value(s, "agent_tasks_total", agent="a", status="done") or 0) + \
                (value(s, "agent_exporter_events_lost_total", source="events:tasks:updates") or 0)

        wait_until(lambda: accounted() == sent, timeout=30, message="received + lost == published")
        assert value(exporter.samples(), "agent_exporter_events_lost_total",
                     source="events:tasks:updates") > 0
    finally:
        server.stop()


def test_a_silent_subscription_is_given_up():
    """Canaries accepted by Redis but never received: the source declares the connection dead."""
    source = PubSubSource.__new__(PubSubSource)
    source._canary_received = 100.0
    source._canary_published = 100.0 + CANARY_MISSES * CANARY_SECONDS - 1
    source._check_canary()  # still within its allowance
    source._canary_published = 100.0 + CANARY_MISSES * CANARY_SECONDS + 1
    with pytest.raises(redis.ConnectionError, match="no canary"):
        source._check_canary()


def test_canary_age_is_exported_and_fresh(redis_url, start_exporter):
    """The age is a sawtooth: it grows, and drops when a canary returns (compared sample to
    sample, not to the first sample, which may itself have been taken just after a return)."""
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    wait_until(lambda: value(exporter.samples(), "agent_exporter_canary_age_seconds") is not None)
    ages: list[float] = []

    def came_back() -> bool:
        ages.append(value(exporter.samples(), "agent_exporter_canary_age_seconds"))
        assert 0 <= ages[-1] < 2 * CANARY_SECONDS + 1, ages
        return len(ages) > 1 and ages[-1] < ages[-2]

    wait_until(came_back, timeout=3 * CANARY_SECONDS, message="a canary comes back")


def test_a_million_agent_names_stay_within_budget_and_memory(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=FAST_STREAMS)
    client = redis.Redis.from_url(redis_url)
    names, per_message = 1_000_000, 1000
    for start in range(0, names, 100 * per_message):
        pipe = client.pipeline(transaction=False)
        for message in range(start, start + 100 * per_message, per_message):
            batch = [{"agentId": f"a{i}", "agentType": "t", "status": "busy"}
                     for i in range(message, message + per_message)]
            pipe.xadd("events:agents:status", {"data": orjson.dumps(batch)})
        pipe.execute()
    wait_until(lambda: value(exporter.samples(), "agent_exporter_events_total",
                             source="events:agents:status", type="agents") == names,
               timeout=300, interval=1.0, message="a million events applied")
    s = exporter.samples()
    assert value(s, "agent_exporter_series", metric="agent_busy") == 10_001  # budget + overflow
    assert value(s, "agent_exporter_series_overflow_total", metric="agent_busy") == names - 10_000
    assert value(s, "agent_busy", agent="__overflow__") == 1
    assert value(s, "process_resident_memory_bytes") < 300 * 2**20


def test_stale_series_expire(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config="series_ttls:\n  agent_busy: 1\n")
    Publisher(redis_url).agent_status("gone", "busy")
    wait_until(lambda: value(exporter.samples(), "agent_busy", agent="gone") == 1)
    wait_until(lambda: value(exporter.samples(), "agent_busy", agent="gone") is None, timeout=10,
               message="the idle series expires")
    s = exporter.samples()
    assert value(s, "agent_exporter_series_expired_total", metric="agent_busy") == 1
    assert value(s, "agent_available", agent="gone") == 1  # other families keep the default TTL


def test_sighup_reloads_mappings_and_keeps_the_old_config_when_the_new_one_is_bad(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config="metrics: []\n")
    config_path = next(arg for arg in exporter.proc.argv if arg.endswith(".yml"))
    publisher = Publisher(redis_url)
    publisher.metric("tokens", 5)
    wait_until(lambda: value(exporter.samples(), "tokens") == 5)

    with open(config_path, "w") as handle:
        handle.write("metrics:\n  - match: queue_*\n    drop: true\n")
    exporter.proc.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in exporter.proc.log(), message="reload logged")
    publisher.metric("queue_depth_x", 3)
    publisher.metric("tokens", 6)
    wait_until(lambda: value(exporter.samples(), "tokens") == 6)
    assert value(exporter.samples(), "queue_depth_x") is None

    with open(config_path, "w") as handle:
        handle.write("metrics: {not: a list}\n")
    exporter.proc.signal(signal.SIGHUP)
    wait_until(lambda: "reload failed, keeping the running configuration" in exporter.proc.log())
    assert "metrics: expected a list" in exporter.proc.log()
    publisher.metric("queue_depth_y", 3)
    publisher.metric("tokens", 7)
    wait_until(lambda: value(exporter.samples(), "tokens") == 7)
    assert value(exporter.samples(), "queue_depth_y") is None
    assert exporter.proc.alive()


def test_sighup_reloads_key_checks(redis_url, start_exporter):
    check = "key_checks:\n  - key: queue:jobs\n    type: list\n    metric: {name}\n    help: Jobs waiting.\n"
    exporter = start_exporter(redis_url, "--no-collector.host", "--no-collector.gpu",
                              config=check.format(name="jobs_waiting"))
    redis.Redis.from_url(redis_url).rpush("queue:jobs", "a", "b", "c")
    wait_until(lambda: value(exporter.samples(), "jobs_waiting") == 3)
    config_path = next(arg for arg in exporter.proc.argv if arg.endswith(".yml"))
    with open(config_path, "w") as handle:
        handle.write(check.format(name="jobs_queued"))
    exporter.proc.signal(signal.SIGHUP)
    wait_until(lambda: value(exporter.samples(), "jobs_queued") == 3, message="the new check runs")
    assert value(exporter.samples(), "jobs_waiting") is None


class RecordingStop(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return False


def test_readers_pause_after_small_reads_only_while_the_rate_is_low(monkeypatch):
    from exporter import sources
    clock = [100.0]
    monkeypatch.setattr(sources.time, "monotonic", lambda: clock[0])
    gather, stop = sources.Gather(), RecordingStop()
    gather.after(1, stop)  # the rate starts low
    gather.after(sources.GATHER_BELOW, stop)  # not a small read
    assert stop.waits == [sources.GATHER_SECONDS]
    clock[0] += 0.5
    gather.after(5000, stop)
    clock[0] += 0.5
    gather.after(1, stop)  # one second at 5 002 messages/s: a busy reader never pauses
    assert gather.rate > sources.GATHER_RATE and stop.waits == [sources.GATHER_SECONDS]
    clock[0] += 1.0
    gather.after(1, stop)  # the next second was quiet again
    assert gather.rate < sources.GATHER_RATE and len(stop.waits) == 2
