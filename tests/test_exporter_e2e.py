"""The exporter as users run it: the real CLI against a real redis-server."""
from __future__ import annotations

import gzip
import subprocess
import time

import orjson
import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from exporter.publisher import Publisher
from tests.support.events import BAD_EVENTS
from tests.support.events import events as event_strategy
from tests.support.procs import (
    NO_COLLECTORS,
    Exporter,
    RedisServer,
    require_binary,
    value,
    wait_until,
)

pytestmark = pytest.mark.integration



def counted(exporter: Exporter, metric: str, **labels: str) -> float:
    return value(exporter.samples(), metric, **labels) or 0.0


def test_seed_shaped_events_become_metrics(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    client = redis.Redis.from_url(redis_url)
    # exactly as the seeds publish them
    client.publish("events:agents:status",
                   orjson.dumps({"agentType": "ml-engineer", "status": "busy", "taskCount": 3}))
    client.publish("events:tasks:updates",
                   orjson.dumps({"taskId": "t-1", "agent": "ml-engineer", "status": "done",
                                 "duration_seconds": 2400, "timestamp": "2026-11-22T00:00:00.000Z"}))
    client.publish("events:training:progress", orjson.dumps({"projectId": "proj-1", "step": 1200, "loss": 0.8,
                                                             "wer": 0.21, "timestamp": time.time()}))
    client.publish("events:errors:monitoring", orjson.dumps({"component": "gpu_metrics_collector",
                                                             "error": "nvidia-smi failed",
                                                             "timestamp": "2026-11-22T00:00:00Z"}))
    # and through the publisher API
    events = Publisher(client)
    events.rag_query(0.42, success=True, cache_hit=False, relevance_score=0.8, confidence_score=0.3)
    events.workflow_step("ingest", "embed", 700)
    events.metric("swarm_total_agents", 12, unit="count", tags={"component": "swarm"}, collector="agent")

    wait_until(lambda: counted(exporter, "swarm_total_agents", component="swarm") == 12,
               message="the last event to show in /metrics")
    s = exporter.samples()
    assert value(s, "agent_busy", agent="ml-engineer") == 1
    assert value(s, "agent_current_tasks", agent="ml-engineer") == 3
    assert value(s, "agent_tasks_total", agent="ml-engineer", status="done") == 1
    assert value(s, "agent_task_duration_seconds_bucket", agent="ml-engineer", status="done", le="1800.0") == 0
    assert value(s, "agent_task_duration_seconds_bucket", agent="ml-engineer", status="done", le="2700.0") == 1
    assert value(s, "training_loss", project="proj-1") == 0.8
    assert value(s, "training_step", project="proj-1") == 1200
    assert value(s, "agent_errors_total", kind="monitoring", component="gpu_metrics_collector") == 1
    assert value(s, "rag_queries_total", source="default", outcome="success") == 1
    assert value(s, "rag_cache_requests_total", source="default", result="miss") == 1
    assert value(s, "workflow_step_duration_seconds_count", workflow="ingest", step="embed") == 1
    assert value(s, "agent_exporter_redis_up") == 1
    assert value(s, "agent_exporter_build_info", version=__import__("exporter").__version__) == 1
    assert value(s, "agent_exporter_event_lag_seconds_count", source="events:training:progress") == 1
    assert value(s, "agent_exporter_events_lost_total", source="events:rag:queries") is None


def test_interleaved_channels_in_one_burst_count_exactly_and_lose_nothing(redis_url, start_exporter):
    """Replies read in one go are applied one batch per channel: per-channel order (and so the
    publishers' sequence numbers) must survive that, and a pattern's channels keep their names."""
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    channels = ["events:tasks:updates", "events:agents:status", "events:errors:monitoring",
                "events:errors:critical"]
    bodies = [{"agent": "a", "status": "done"}, {"agentType": "a", "status": "idle"},
              {"component": "c", "error": "e"}, {"component": "c", "error": "e"}]
    sent = [0] * 4
    pipe = redis.Redis.from_url(redis_url).pipeline(transaction=False)
    for i in range(4000):
        k = (i * 7 + i // 3) % 4  # interleaved, unevenly
        sent[k] += 1
        pipe.publish(channels[k], orjson.dumps({**bodies[k], "_pub": "p", "_seq": sent[k]}))
    pipe.execute()
    types = ["tasks", "agents", "errors", "errors"]
    wait_until(lambda: [counted(exporter, "agent_exporter_events_total", source=c, type=t)
                        for c, t in zip(channels, types)] == sent, message="every event counted")
    s = exporter.samples()
    assert value(s, "agent_tasks_total", agent="a", status="done") == sent[0]
    assert value(s, "agent_errors_total", kind="monitoring", component="c") == sent[2]
    assert value(s, "agent_errors_total", kind="critical", component="c") == sent[3]
    assert [value(s, "agent_exporter_events_lost_total", source=c) or 0 for c in channels] == [0] * 4


def test_buffered_pubsub_replies_are_taken_from_hiredis_directly(redis_url):
    """The pub/sub reader takes replies hiredis has already parsed without redis-py's per-call
    layers; if a redis-py upgrade moves its parser, this fails instead of ingestion slowing."""
    import hiredis

    from exporter.redis_client import client as redis_client
    from exporter.sources.pubsub import _parsed_replies
    pubsub = redis_client(redis_url, timeout=10).pubsub()
    pubsub.subscribe("c")
    redis.Redis.from_url(redis_url).publish("c", b"1")
    parsed = _parsed_replies(pubsub.connection)
    assert isinstance(parsed.__self__, hiredis.Reader)
    first = pubsub.connection.read_response(timeout=5)  # the subscribe confirmation
    wait_until(lambda: pubsub.connection.can_read(timeout=0.1), message="the message arrived")
    pubsub.connection.read_response(timeout=0)  # reads the socket, leaves nothing buffered
    assert first[0] == b"subscribe" and parsed().__class__ is not list
    pipe = redis.Redis.from_url(redis_url).pipeline(transaction=False)
    for i in range(100):  # Redis writes them to the subscriber in one go
        pipe.publish("c", str(i))
    pipe.execute()
    assert pubsub.connection.read_response(timeout=5) == [b"message", b"c", b"0"]
    drained = []
    while (reply := parsed()).__class__ is list:
        drained.append(reply)
    assert drained and drained == [[b"message", b"c", str(i).encode()]
                                   for i in range(1, len(drained) + 1)]
    pubsub.close()


def test_scrape_passes_promtool_check_metrics(redis_url, start_exporter):
    promtool = require_binary("promtool")
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    events = Publisher(redis_url)
    events.agent_status("ml-engineer", "busy", 2, queue_depth=1, load=0.4)
    events.task_update("t", "ml-engineer", "failed", 30)
    events.training_progress("p", 10, loss=1.5, wer=0.3, grad_norm=2.0)
    events.rag_query(0.1, True, cache_hit=True, relevance_score=0.9, confidence_score=0.9, source="kb")
    events.error("critical", "planner", "boom")
    wait_until(lambda: counted(exporter, "agent_errors_total", kind="critical", component="planner"))
    result = subprocess.run([promtool, "check", "metrics"], input=exporter.scrape(), text=True,
                            capture_output=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


def test_http_negotiates_openmetrics_and_gzip(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    Publisher(redis_url).task_update("t", "a", "done", 1)
    wait_until(lambda: counted(exporter, "agent_tasks_total", agent="a", status="done"))

    om = requests.get(exporter.url + "/metrics",
                      headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in parse_om(om.text)}
    assert families["agent_tasks"].type == "counter"
    assert families["agent_exporter_collector_success"].type == "gauge"

    raw = requests.get(exporter.url + "/metrics", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(raw.raw.read())
    assert b'agent_tasks_total{agent="a",status="done"} 1.0' in body
    assert raw.headers["Content-Type"].startswith("text/plain; version=0.0.4")

    landing = requests.get(exporter.url + "/")
    assert landing.status_code == 200 and 'href="metrics"' in landing.text
    assert requests.get(exporter.url + "/nope").status_code == 404


def test_survives_redis_restart_and_resubscribes(tmp_path, start_exporter):
    server = RedisServer(tmp_path / "redis").start()
    try:
        exporter = start_exporter(server.url, *NO_COLLECTORS)
        Publisher(server.url).task_update("t", "a", "done")
        wait_until(lambda: counted(exporter, "agent_tasks_total", agent="a", status="done") == 1)

        server.kill()
        wait_until(lambda: value(exporter.samples(), "agent_exporter_redis_up") == 0,
                   message="redis_up 0")
        assert requests.get(exporter.url + "/readyz").status_code == 503
        assert requests.get(exporter.url + "/healthz").status_code == 200

        server = RedisServer(tmp_path / "redis", port=server.port).start()
        wait_until(lambda: requests.get(exporter.url + "/readyz").status_code == 200,
                   timeout=20, message="resubscribed")
        s = exporter.samples()
        assert value(s, "agent_exporter_redis_up") == 1
        assert value(s, "agent_exporter_redis_reconnects_total") >= 1
        Publisher(server.url).task_update("t", "a", "done")
        wait_until(lambda: counted(exporter, "agent_tasks_total", agent="a", status="done") == 2,
                   message="events after the restart")
        assert exporter.proc.alive()
    finally:
        server.stop()


def test_starts_without_redis_and_becomes_ready_when_it_appears(tmp_path, start_exporter):
    server = RedisServer(tmp_path / "late")
    exporter = start_exporter(server.url, *NO_COLLECTORS, ready=False)
    assert requests.get(exporter.url + "/readyz").status_code == 503
    assert value(exporter.samples(), "agent_exporter_redis_up") == 0
    server.start()
    try:
        wait_until(lambda: requests.get(exporter.url + "/readyz").status_code == 200, timeout=20,
                   message="ready once Redis is up")
    finally:
        server.stop()


def test_bad_events_are_counted_and_later_events_still_count(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    client = redis.Redis.from_url(redis_url)
    for channel, event, _ in BAD_EVENTS:
        client.publish(channel, event if isinstance(event, bytes) else orjson.dumps(event))
    client.publish("events:tasks:updates", orjson.dumps({"agent": "after", "status": "done"}))
    wait_until(lambda: counted(exporter, "agent_tasks_total", agent="after", status="done") == 1)
    s = exporter.samples()
    reasons = {reason for _, _, reason in BAD_EVENTS}
    seen = {dict(labels)["reason"] for (name, labels) in s if name == "agent_exporter_events_invalid_total"}
    assert seen == reasons
    total = sum(v for (name, _), v in s.items() if name == "agent_exporter_events_invalid_total")
    assert total == len(BAD_EVENTS)
    assert exporter.proc.alive()
    log = exporter.proc.log()
    assert "dropped invalid event on events:tasks:updates: missing_field" in log


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(corpus=st.lists(st.tuples(st.sampled_from(["events:agents:status", "events:tasks:updates",
                                                  "events:training:progress", "events:rag:queries",
                                                  "events:workflows:steps", "events:errors:fuzz",
                                                  "events:metrics", "events:llm:calls"]),
                                 event_strategy | st.binary(max_size=100)),
                       min_size=300, max_size=300))
def test_generated_corpus_never_stops_the_exporter(corpus, redis_server, tmp_path_factory):
    redis_server.client().flushall()
    exporter = Exporter(tmp_path_factory.mktemp("fuzz"), redis_server.url, NO_COLLECTORS).wait_ready()
    try:
        client = redis_server.client()
        pipe = client.pipeline(transaction=False)
        for channel, event in corpus:
            pipe.publish(channel, event if isinstance(event, bytes) else orjson.dumps(event))
        pipe.publish("events:tasks:updates", orjson.dumps({"agent": "sentinel", "status": "done"}))
        pipe.execute()
        wait_until(lambda: counted(exporter, "agent_tasks_total", agent="sentinel", status="done"))
        s = exporter.samples()
        handled = sum(v for (name, _), v in s.items()
                      if name in ("agent_exporter_events_total", "agent_exporter_events_invalid_total"))
        # every message is accounted for; a batch (JSON array) counts once per element
        assert handled >= len(corpus) + 1
        assert exporter.proc.alive()
    finally:
        exporter.stop()


@pytest.mark.parametrize("argv_extra, env, expected", [
    (["--listen", "nonsense"], {}, "flag --listen: listen: expected HOST:PORT"),
    (["--redis-url", "http://x"], {}, "flag --redis-url: redis_url: not a Redis URL"),
    ([], {"AGENT_EXPORTER_SERIES_BUDGET": "lots"}, "environment AGENT_EXPORTER_SERIES_BUDGET: series_budget"),
])
def test_bad_flags_and_environment_exit_2_naming_the_key(argv_extra, env, expected):
    import os
    import sys

    result = subprocess.run([sys.executable, "-m", "exporter", *argv_extra], capture_output=True,
                            text=True, timeout=30, env={**os.environ, **env})
    assert result.returncode == 2
    assert expected in result.stderr
