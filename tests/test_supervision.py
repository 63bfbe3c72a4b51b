"""Supervised sources, through the real command line and redis-server: every failure a reader
meets is counted and survived, and the exporter never says it reads while it does not.

One test per failure class: a channel or stream key that is not UTF-8, a stream deleted while
read, a consumer group destroyed, a stream key of another type, Redis restarted without its data,
a checkpoint that cannot be loaded, a missing ACL permission, a bug in a handler, a hung Redis, a
Redis busy running a script.
"""
from __future__ import annotations

import os
import signal
import textwrap
import threading
import time

import orjson
import pytest
import redis
import requests

from exporter.publisher import Publisher
from tests.support.procs import NO_COLLECTORS, REPO, Exporter, RedisServer, value, wait_until

pytestmark = pytest.mark.integration

STREAMS = """
source: streams
streams:
  checkpoint_seconds: 0.2
  block_ms: 100
"""

CONFIGS = {"pubsub": None, "streams": STREAMS}
TASKS = "events:tasks:updates"
DETECT_HUNG_SECONDS = 15.0


def errors(exporter: Exporter, source: str) -> dict[str, float]:
    """agent_exporter_source_errors_total of one source, by error."""
    return {dict(labels)["error"]: v for (name, labels), v in exporter.samples().items()
            if name == "agent_exporter_source_errors_total" and dict(labels)["source"] == source}


def tasks_done(exporter: Exporter, agent: str) -> float:
    return value(exporter.samples(), "agent_tasks_total", agent=agent, status="done") or 0


def publish_task(url: str, agent: str, mode: str) -> None:
    Publisher(url, transport=mode).task_update("t", agent, "done")


def reading(exporter: Exporter, source: str) -> bool:
    s = exporter.samples()
    return (value(s, "agent_exporter_source_up", source=source) == 1
            and value(s, "agent_exporter_redis_up") == 1
            and requests.get(exporter.url + "/readyz", timeout=2).status_code == 200)


def down(exporter: Exporter, source: str) -> bool:
    s = exporter.samples()
    return (value(s, "agent_exporter_source_up", source=source) == 0
            and value(s, "agent_exporter_redis_up") == 0
            and requests.get(exporter.url + "/readyz", timeout=2).status_code == 503)


def test_pubsub_reads_on_after_a_channel_name_that_is_not_utf8(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    client = redis.Redis.from_url(redis_url)
    client.publish(b"events:errors:\xff\xfe", orjson.dumps({"component": "c", "error": "x"}))
    publish_task(redis_url, "after", "pubsub")
    wait_until(lambda: tasks_done(exporter, "after") == 1, message="the event after it")
    s = exporter.samples()
    assert value(s, "agent_errors_total", kind="\\xff\\xfe", component="c") == 1
    assert value(s, "agent_exporter_events_total", source="events:errors:\\xff\\xfe",
                 type="errors") == 1
    assert reading(exporter, "pubsub")


def test_streams_read_a_stream_key_that_is_not_utf8(redis_url, start_exporter):
    client = redis.Redis.from_url(redis_url)
    client.xadd(b"events:errors:\xff\xfe", {"data": orjson.dumps({"component": "c"})})
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=STREAMS)
    wait_until(lambda: value(exporter.samples(), "agent_errors_total", kind="\\xff\\xfe",
                             component="c") == 1, message="the entry of the odd stream")
    wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_entries_acked_total",
                             stream="events:errors:\\xff\\xfe") == 1, message="acknowledged")
    publish_task(redis_url, "after", "streams")
    wait_until(lambda: tasks_done(exporter, "after") == 1)
    assert reading(exporter, "streams")


def test_streams_recreate_a_stream_deleted_while_it_is_read(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=STREAMS)
    publish_task(redis_url, "before", "streams")
    wait_until(lambda: tasks_done(exporter, "before") == 1)
    # The reader fails on the next command that names it: UNBLOCKED or NOGROUP (XREADGROUP,
    # XPENDING), ERR (XINFO GROUPS: no such key).
    redis.Redis.from_url(redis_url).delete(TASKS)
    wait_until(lambda: set(errors(exporter, "streams")) & {"UNBLOCKED", "NOGROUP", "ERR"},
               message="the failed read counted")
    publish_task(redis_url, "after", "streams")
    wait_until(lambda: tasks_done(exporter, "after") == 1, timeout=20,
               message="the recreated stream read")
    wait_until(lambda: reading(exporter, "streams"))
    assert tasks_done(exporter, "before") == 1


def test_streams_recreate_a_destroyed_group_after_the_entries_already_read(redis_url,
                                                                            start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=STREAMS)
    for _ in range(5):
        publish_task(redis_url, "before", "streams")
    wait_until(lambda: tasks_done(exporter, "before") == 5)
    redis.Redis.from_url(redis_url).xgroup_destroy(TASKS, "agent-exporter")
    wait_until(lambda: errors(exporter, "streams"), message="the failed read counted")
    publish_task(redis_url, "after", "streams")
    wait_until(lambda: tasks_done(exporter, "after") == 1, timeout=20,
               message="entries after the new group read")
    assert tasks_done(exporter, "before") == 5, "the stream survived: nothing is read twice"


def test_streams_skip_a_key_of_another_type_and_read_the_others(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=STREAMS)
    client = redis.Redis.from_url(redis_url)
    client.delete(TASKS)
    client.set(TASKS, "not a stream")
    wait_until(lambda: errors(exporter, "streams").get("WRONGTYPE", 0) >= 1, timeout=20,
               message="WRONGTYPE counted")
    Publisher(redis_url, transport="streams").agent_status("a1", "busy")
    wait_until(lambda: value(exporter.samples(), "agent_busy", agent="a1") == 1,
               message="the other streams are still read")
    assert reading(exporter, "streams")
    assert "events:tasks:updates is not read until it is a stream again" in exporter.proc.log()
    client.delete(TASKS)
    publish_task(redis_url, "back", "streams")
    wait_until(lambda: tasks_done(exporter, "back") == 1, timeout=30,
               message="the key read again once it is a stream")


def test_streams_recreate_groups_after_redis_restarted_without_its_data(tmp_path, start_exporter):
    server = RedisServer(tmp_path / "redis").start()
    try:
        exporter = start_exporter(server.url, *NO_COLLECTORS, config=STREAMS,
                                  env={"AGENT_EXPORTER_CONSUMER": "c1"})
        publish_task(server.url, "a", "streams")
        wait_until(lambda: tasks_done(exporter, "a") == 1)
        server.kill()
        server = RedisServer(tmp_path / "empty", port=server.port).start()
        publish_task(server.url, "a", "streams")
        wait_until(lambda: tasks_done(exporter, "a") == 2, timeout=30,
                   message="entries of the new stream counted on top")
        wait_until(lambda: reading(exporter, "streams"), timeout=30)
        wait_until(lambda: server.client().exists("agent-exporter:checkpoint:agent-exporter:c1"),
                   message="the checkpoint written again")
    finally:
        server.stop()


BAD_CHECKPOINTS = {
    "not_json": lambda c, key: c.set(key, b"\xff not json"),
    "not_an_object": lambda c, key: c.set(key, b"[1, 2]"),
    # the first row would load, the second cannot: nothing may be loaded
    "half_valid": lambda c, key: c.set(key, orjson.dumps(
        {"agent_tasks_total": {"rows": [[["old", "done"], 5, 0], [["x", "done"], "five", 0]]}})),
    "a_hash": lambda c, key: c.hset(key, "field", "value"),
}


@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
def test_a_checkpoint_that_cannot_be_loaded_is_skipped_counted_and_replaced(kind, redis_url,
                                                                            start_exporter):
    key = "agent-exporter:checkpoint:agent-exporter:c1"
    client = redis.Redis.from_url(redis_url)
    BAD_CHECKPOINTS[kind](client, key)
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=STREAMS,
                              env={"AGENT_EXPORTER_CONSUMER": "c1"})
    publish_task(redis_url, "new", "streams")
    wait_until(lambda: tasks_done(exporter, "new") == 1)
    assert errors(exporter, "streams") == {"UnreadableCheckpoint": 1}
    assert value(exporter.samples(), "agent_tasks_total", agent="old", status="done") is None
    assert f"checkpoint {key}" in exporter.proc.log()

    def replaced() -> bool:
        rows = orjson.loads(client.get(key))["agent_tasks_total"]["rows"]
        return rows == [[["new", "done"], 1.0, rows[0][2]]]

    wait_until(replaced, message="a valid checkpoint in its place")
    assert reading(exporter, "streams")


DENIED = {"pubsub": "-subscribe -psubscribe", "streams": "-xreadgroup"}


@pytest.mark.parametrize("mode", ["pubsub", "streams"])
def test_a_source_without_a_permission_says_why_and_reads_once_granted(mode, tmp_path,
                                                                       start_exporter):
    server = RedisServer(tmp_path / "redis").start()
    try:
        admin = server.client()
        admin.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all",
                              *DENIED[mode].split())
        url = f"redis://limited:pw@127.0.0.1:{server.port}/0"
        exporter = start_exporter(url, *NO_COLLECTORS, config=CONFIGS[mode], ready=False)
        wait_until(lambda: errors(exporter, mode).get("NOPERM", 0) >= 3, timeout=20,
                   message="retries counted")
        assert down(exporter, mode)
        log = exporter.proc.log()
        assert log.count(f"{mode}: NOPERM") == 1, "once a minute, not once per retry"
        assert "no permissions" in log
        admin.execute_command("ACL", "SETUSER", "limited", "+@all")
        wait_until(lambda: reading(exporter, mode), timeout=20, message="reading once granted")
        publish_task(server.url, "a", mode)
        wait_until(lambda: tasks_done(exporter, "a") == 1)
    finally:
        server.stop()


# The least permissions the runbook of ExporterSourceNotReading lists.
LEAST_PERMISSIONS = [
    "resetkeys", "~events:*", "~agent-exporter:checkpoint:*",
    "resetchannels", "&events:*", "&events:errors:*", "&agent-exporter:canary:*",
    "-@all", "+ping", "+subscribe", "+psubscribe", "+publish",
    "+scan", "+xgroup", "+xreadgroup", "+xpending", "+xclaim", "+xinfo", "+get", "+set",
    "+multi", "+exec", "+role", "+wait",
]


@pytest.mark.parametrize("mode", ["pubsub", "streams"])
def test_the_documented_least_permissions_suffice(mode, tmp_path, start_exporter):
    server = RedisServer(tmp_path / "redis").start()
    try:
        server.client().execute_command("ACL", "SETUSER", "least", "on", ">pw",
                                        *LEAST_PERMISSIONS)
        exporter = start_exporter(f"redis://least:pw@127.0.0.1:{server.port}/0",
                                  *NO_COLLECTORS, config=CONFIGS[mode])
        publish_task(server.url, "a", mode)
        wait_until(lambda: tasks_done(exporter, "a") == 1)
        if mode == "pubsub":  # a canary went out and came back
            first = value(exporter.samples(), "agent_exporter_canary_age_seconds")
            wait_until(lambda: value(exporter.samples(), "agent_exporter_canary_age_seconds")
                       < first, timeout=20, message="a canary back")
        else:  # a checkpoint was written, and groups were reported
            wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_pending_entries",
                                     stream=TASKS) == 0)
            assert value(exporter.samples(), "agent_exporter_checkpoints_total", result="ok") >= 1
        assert errors(exporter, mode) == {}
        assert reading(exporter, mode)
    finally:
        server.stop()


INJECTED_BUG = """
import exporter.domains.tasks as tasks

_handle = tasks.TaskUpdates.handle


def handle(self, event, channel):
    if event.get("agent") == "boom":
        raise RuntimeError("injected bug")
    return _handle(self, event, channel)


tasks.TaskUpdates.handle = handle
"""


@pytest.mark.parametrize("mode", ["pubsub", "streams"])
def test_a_bug_in_a_handler_drops_the_event_and_the_reader_goes_on(mode, redis_url, tmp_path,
                                                                   start_exporter):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(INJECTED_BUG))
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=CONFIGS[mode],
                              env={"PYTHONPATH": f"{hook}{os.pathsep}{REPO}"})
    for agent in ("before", "boom", "after"):
        publish_task(redis_url, agent, mode)
    wait_until(lambda: tasks_done(exporter, "after") == 1, message="the event after the bug")
    s = exporter.samples()
    assert value(s, "agent_exporter_events_invalid_total", source=TASKS,
                 reason="internal_error") == 1
    assert value(s, "agent_exporter_events_total", source=TASKS, type="tasks") == 2
    assert tasks_done(exporter, "before") == 1 and tasks_done(exporter, "boom") == 0
    assert "RuntimeError: injected bug" in exporter.proc.log()
    assert reading(exporter, mode)
    if mode == "streams":  # the failed entry is acknowledged with the others, never re-read
        wait_until(lambda: value(exporter.samples(), "agent_exporter_stream_pending_entries",
                                 stream=TASKS) == 0)


@pytest.mark.parametrize("mode", ["pubsub", "streams"])
def test_a_hung_redis_is_reported_within_15_seconds(mode, tmp_path, start_exporter):
    server = RedisServer(tmp_path / "redis").start()
    assert server.proc is not None
    try:
        exporter = start_exporter(server.url, *NO_COLLECTORS, config=CONFIGS[mode])
        wait_until(lambda: reading(exporter, mode))
        server.proc.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        wait_until(lambda: down(exporter, mode), timeout=DETECT_HUNG_SECONDS + 5,
                   message="the hang reported")
        detected = time.monotonic() - stopped
        assert detected < DETECT_HUNG_SECONDS, f"took {detected:.1f}s"
        server.proc.signal(signal.SIGCONT)
        wait_until(lambda: reading(exporter, mode), timeout=30, message="reading again")
        publish_task(server.url, "a", mode)
        wait_until(lambda: tasks_done(exporter, "a") == 1)
    finally:
        server.proc.signal(signal.SIGCONT)
        server.stop()


def test_a_redis_busy_running_a_script_is_reported(tmp_path, start_exporter):
    """The subscriber waits quietly; only the health check can tell that Redis serves nothing."""
    server = RedisServer(tmp_path / "redis", extra=["--busy-reply-threshold", "1000"]).start()

    def run_a_script_forever() -> None:
        try:
            server.client().eval("while true do end", 0)
        except redis.ResponseError:  # ended by SCRIPT KILL
            pass

    busy = threading.Thread(target=run_a_script_forever, daemon=True)
    try:
        exporter = start_exporter(server.url, *NO_COLLECTORS)
        busy.start()
        wait_until(lambda: down(exporter, "pubsub"), timeout=DETECT_HUNG_SECONDS,
                   message="a busy Redis reported")
        server.client().script_kill()
        wait_until(lambda: reading(exporter, "pubsub"), timeout=20, message="reading again")
    finally:
        busy.join(10)
        server.stop()


def test_a_healthy_exporter_reports_every_source_reading(redis_url, start_exporter):
    """The new gauges on a healthy exporter: up, and a last read that keeps advancing."""
    exporter = start_exporter(redis_url, *NO_COLLECTORS, "--source", "both", config=STREAMS)
    s = exporter.samples()
    for source in ("pubsub", "streams"):
        assert value(s, "agent_exporter_source_up", source=source) == 1
    first = value(s, "agent_exporter_source_last_read_timestamp_seconds", source="pubsub")
    assert abs(first - time.time()) < 10  # a canary comes back every 5 s
    wait_until(lambda: value(exporter.samples(), "agent_exporter_source_last_read_timestamp_seconds",
                             source="streams") > first, message="the last read advances")
    assert value(exporter.samples(), "agent_exporter_redis_up") == 1
