"""Seed 000's insights built from Alertmanager notifications (exporter/insights.py): the message
of each kind, the ranking annotation's parsing, the settings, and the errors domain that
remembers critical errors — on a real redis-server where Redis is involved."""
from __future__ import annotations

import threading
import time

import pytest
import redis
import requests

from exporter import contract
from exporter.config import ConfigError, load
from exporter.domains import Context, create_domains
from exporter.events import Invalid
from exporter.insights import (
    MAX_CORRELATIONS,
    MAX_QUEUED_ERRORS,
    CriticalErrorLog,
    Insights,
    InsightSettings,
    RecordingCriticalErrors,
    ranking_lines,
    rankings,
)
from exporter.publisher import Publisher
from exporter.store import Store
from tests.support.alerts import alert, payload
from tests.support.procs import NO_COLLECTORS, Exporter, free_port, value, wait_until
from tests.support.subscriber import Subscriber

RANKING = ("agentType", "score", "tasksCompleted", "avgDuration", "errorRate")


def ranking_alert(text: str, status: str = "firing", job: str = "agent-exporter") -> dict:
    out = alert("AgentPerformanceRanking", "info", "distribution", status=status, job=job)
    out["annotations"].update(seed_type="performance_rankings_updated", value="2", rankings=text)
    return out


def test_ranking_lines_are_parsed_best_first_and_bad_lines_skipped():
    text = "-1000 0 0 10 flaky\n199 20 10 0 fast\nnot numbers at all x\n5 1  0 my agent\n\n"
    message = rankings([ranking_alert(text)])
    assert message is not None
    assert message["type"] == "performance_rankings_updated"
    assert message["timestamp"].endswith("Z")
    assert [tuple(r[k] for k in RANKING) for r in message["rankings"]] == [
        ("fast", 199.0, 20.0, 10.0, 0.0),
        ("my agent", 5.0, 1.0, 0.0, 0.0),  # a query that found nothing counts 0, as in the seed
        ("flaky", -1000.0, 0.0, 0.0, 10.0),
    ]
    # counts as the seed has them: whole numbers (JSON 20, not 20.0)
    assert all(type(r[k]) is int for r in message["rankings"] for k in ("tasksCompleted", "errorRate"))


def test_a_resolved_or_empty_ranking_publishes_nothing():
    assert rankings([ranking_alert("199 20 10 0 fast\n", status="resolved")]) is None
    assert rankings([ranking_alert("")]) is None
    assert rankings([alert()]) is None
    assert ranking_lines("1 2 3 4\n") == []  # no agent


def slow_step_alert(status: str = "firing") -> dict:
    out = alert("WorkflowStepSlow", "warning", "tasks", status=status, workflow="etl",
                step="load")
    out["annotations"].update(seed_type="slow_step_detected", value="742.5", threshold="600",
                              sample_count="14", recommendation="Consider parallelization or resource optimization.")
    return out


def hot_alert(value: str = "88.2") -> dict:
    out = alert("GpuHotDuringCriticalErrors", "info", "gpu", instance="gpu-host:9842")
    out["annotations"].update(seed_type="error_performance_correlation", value=value,
                              threshold="85", recommendation="Check GPU cooling before retrying.")
    return out


@pytest.fixture()
def client(redis_server):
    client = redis_server.client()
    client.flushdb()
    yield client
    client.close()


def test_a_slow_step_becomes_the_seeds_workflow_insight(client):
    batch = Insights(InsightSettings(), client, Store()).build([slow_step_alert(),
                                                       slow_step_alert("resolved")])
    ((channel, message),) = batch.messages
    assert channel == "events:insights:workflows"
    assert {k: message[k] for k in ("type", "workflowId", "stepId", "avgDuration", "sampleCount",
                                    "recommendation")} == {
        "type": "slow_step_detected", "workflowId": "etl", "stepId": "load",
        "avgDuration": 742.5, "sampleCount": 14,
        "recommendation": "Consider parallelization or resource optimization."}


@pytest.mark.parametrize("text", ["", "n/a", "NaN", "+Inf", "-3", "1e300"])
def test_a_sample_count_that_is_not_a_count_reads_as_zero(client, text):
    alert = slow_step_alert()
    alert["annotations"]["sample_count"] = text
    ((_, message),) = Insights(InsightSettings(), client, Store()).build([alert]).messages
    assert message["sampleCount"] == 0


def test_each_recent_critical_error_is_correlated_once(client):
    settings = InsightSettings(correlation_window_seconds=600)
    for error_id in ("err-1", "err-1", "err-2"):  # err-1 and an HA pair's twin: one error
        errors = CriticalErrorLog(settings, client, Store())
        errors.record(error_id)
        errors.flush()
    client.zadd(settings.critical_errors_key, {"err-old": time.time() - 3600})
    insights = Insights(settings, client, Store())

    batch = insights.build([hot_alert("86"), hot_alert("91.5")])
    assert [c for c, _ in batch.messages] == ["events:insights:correlations"] * 2
    by_id = {m["errorId"]: m for _, m in batch.messages}
    assert set(by_id) == {"err-1", "err-2"}
    assert by_id["err-1"] == {**by_id["err-1"], "type": "error_performance_correlation",
                              "possibleCause": "high_gpu_temperature", "avgTemp": 91.5,
                              "recommendation": "Check GPU cooling before retrying."}

    pipe = client.pipeline(transaction=True)
    insights.queue(pipe, batch)
    pipe.execute()
    assert insights.build([hot_alert()]).messages == ()  # reported: the next notification skips them
    assert client.zrange(settings.critical_errors_key, 0, -1) == [b"err-old"]


def test_an_error_storm_is_correlated_a_bounded_batch_at_a_time(client):
    settings = InsightSettings()
    now = time.time()
    client.zadd(settings.critical_errors_key,
                {f"e{n}": now - 1 + n / 1e6 for n in range(MAX_CORRELATIONS + 5)})
    insights = Insights(settings, client, Store())
    batch = insights.build([hot_alert()])
    assert len(batch.messages) == MAX_CORRELATIONS
    assert batch.messages[0][1]["errorId"] == "e0"  # the oldest first
    pipe = client.pipeline(transaction=True)
    insights.queue(pipe, batch)
    pipe.execute()
    assert [m["errorId"] for _, m in insights.build([hot_alert()]).messages] == [
        f"e{n}" for n in range(MAX_CORRELATIONS, MAX_CORRELATIONS + 5)]


def test_a_ranking_is_kept_in_the_seeds_hash_too(client):
    insights = Insights(InsightSettings(), client, Store())
    pipe = client.pipeline(transaction=True)
    insights.queue(pipe, insights.build([ranking_alert("199 20 10 0 fast\n")]))
    pipe.execute()
    assert b'"agentType":"fast"' in client.hget("metrics:agents:rankings", "performance_ranked")


def test_disabled_insights_build_nothing(client):
    alerts = [ranking_alert("1 1 1 0 a\n"), slow_step_alert(), hot_alert()]
    assert Insights(InsightSettings(enabled=False), client, Store()).build(alerts).messages == ()


def test_only_valid_critical_errors_with_an_id_are_remembered(client):
    settings = InsightSettings()
    errors = create_domains(Context(Store()))["errors"]
    log = CriticalErrorLog(settings, client, Store())
    domain = RecordingCriticalErrors(errors, log)
    domain.handle({"errorId": "e1", "component": "trainer"}, "events:errors:critical")
    domain.handle({"errorId": "e2", "component": "trainer"}, "events:errors:warning")
    domain.handle({"component": "trainer"}, "events:errors:critical")
    with pytest.raises(Invalid):
        domain.handle({"errorId": "e3", "component": ["not", "a", "label"]},
                      "events:errors:critical")
    assert client.zrange(settings.critical_errors_key, 0, -1) == []  # queued: no I/O on ingest
    log.flush()
    assert client.zrange(settings.critical_errors_key, 0, -1) == [b"e1"]


def test_ids_wait_out_a_redis_failure_and_an_overflow_is_counted(caplog, client):
    store = Store()
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.5)  # nothing listens there
    log = CriticalErrorLog(InsightSettings(), nowhere, store)
    for n in range(MAX_QUEUED_ERRORS + 3):
        log.record(f"e{n}")
    log.flush()  # logged, not raised; the ids are kept
    assert "cannot record 10000 critical error id(s) yet" in caplog.text
    assert [s.value for s in store.family("agent_exporter_insights_errors_dropped_total",
                                          "counter", "", [], ttl=0).series.values()] == [3]
    log.redis = client  # Redis is back
    log.flush()
    kept = log.redis.zrange(InsightSettings().critical_errors_key, 0, -1)
    assert len(kept) == MAX_QUEUED_ERRORS and b"e3" in kept and b"e0" not in kept


def test_a_failed_write_that_pushes_ids_out_counts_them():
    """Ids that arrive while a write is in flight and fails: the taken ones go back in front,
    and what no longer fits is counted."""
    store = Store()

    class Failing:  # a Redis that takes the write, then fails it after 5 more ids arrived
        def pipeline(self, transaction: bool) -> Failing:
            return self

        def __getattr__(self, name: str):  # zadd, zremrangebyscore, expire
            return lambda *args, **kwargs: None

        def execute(self) -> None:
            for n in range(5):
                log.record(f"new{n}")
            raise redis.ConnectionError("down")

    log = CriticalErrorLog(InsightSettings(), Failing(), store)  # type: ignore[arg-type]
    for n in range(MAX_QUEUED_ERRORS - 2):
        log.record(f"old{n}")
    log.flush()
    dropped = store.family("agent_exporter_insights_errors_dropped_total", "counter", "", [],
                           ttl=0)
    assert [s.value for s in dropped.series.values()] == [3]
    assert len(log.queue) == MAX_QUEUED_ERRORS
    assert log.queue[0][0] == "old0" and log.queue[-1][0] == "new1"


def test_the_writer_thread_survives_a_surprise(caplog):
    log = CriticalErrorLog(InsightSettings(), redis.Redis(port=free_port()), Store())
    calls = []

    def surprise() -> None:
        calls.append(1)
        raise ValueError("a bug")

    log.flush = surprise  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=log.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(lambda: len(calls) >= 2, timeout=10, message="a second flush after the first failed")
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert "writing critical error ids failed: ValueError: a bug" in caplog.text


@pytest.mark.parametrize(("section", "key"), [
    ("enabled: maybe", "insights.enabled"),
    ("correlation_window_seconds: 0", "insights.correlation_window_seconds"),
    ("critical_errors_key: ''", "insights.critical_errors_key"),
    ("channel_prefix: 7", "insights.channel_prefix"),
    ("surprise: 1", "insights"),
])
def test_bad_insight_settings_name_the_key(tmp_path, section, key):
    path = tmp_path / "config.yml"
    path.write_text(f"insights:\n  {section}\n")
    with pytest.raises(ConfigError) as raised:
        load(str(path), env={})
    assert key in str(raised.value)


def test_insight_settings_are_read(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("insights:\n  correlation_window_seconds: 120\n  channel_prefix: 'x:'\n")
    assert load(str(path), env={}).insights == InsightSettings(
        channel_prefix="x:", correlation_window_seconds=120.0)


def test_the_bridge_publishes_a_ranking_as_an_insight_only(redis_url, start_exporter):
    exporter = start_exporter(redis_url)
    subscriber = Subscriber(redis_url, "events:*")
    try:
        response = requests.post(exporter.url + "/alertmanager", timeout=10, data=payload(
            ranking_alert("199 20 10 0 fast\n"), slow_step_alert()))
        assert response.status_code == 200, response.text
        received = dict(subscriber.wait_for(3))  # one MULTI/EXEC: a 4th would be here too
        assert sorted(received) == ["events:alerts:tasks", "events:insights:agent_performance",
                                    "events:insights:workflows"]
        assert received["events:alerts:tasks"]["labels"]["alertname"] == "WorkflowStepSlow"
        assert received["events:insights:agent_performance"]["rankings"][0]["agentType"] == "fast"
        assert received["events:insights:workflows"]["type"] == "slow_step_detected"
        samples = exporter.samples()
        for kind in ("performance_rankings_updated", "slow_step_detected"):
            assert value(samples, "agent_exporter_insights_published_total", type=kind) == 1
        assert value(samples, "agent_exporter_alerts_received_total", severity="warning",
                     status="firing") == 1  # the slow step; the ranking is no alert
    finally:
        subscriber.close()


STREAMS = """
source: streams
streams:
  checkpoint_seconds: 0.2
  block_ms: 100
"""


@pytest.mark.parametrize("transport", ["streams", "pubsub"])
def test_several_exporters_remember_each_critical_error_once(redis_url, tmp_path, transport):
    """A consumer group splits the errors between two exporters, an HA pair on pub/sub sees each
    twice: either way the shared set holds every id once, and only the critical ones."""
    publisher = Publisher(redis_url, transport=transport)
    if transport == "streams":  # the error streams exist (found by SCAN) before the start
        publisher.error("critical", "trainer", "warm-up", error_id="e-0")
    exporters = [Exporter(tmp_path, redis_url, NO_COLLECTORS, env={
        "AGENT_EXPORTER_CONSUMER": name}, config=STREAMS if transport == "streams" else None
                          ).wait_ready() for name in ("a", "b")]
    client = redis.Redis.from_url(redis_url)
    try:
        if transport == "pubsub":
            wait_until(lambda: client.pubsub_numsub(contract.TASKS)[0][1] >= 2,
                       message="both exporters subscribed")
        ids = {f"e-{n}" for n in range(1, 41)}
        for error_id in sorted(ids):
            publisher.error("critical", "trainer", "CUDA error", error_id=error_id)
            publisher.error("warning", "trainer", "slow", error_id="w-" + error_id)
        if transport == "streams":
            ids.add("e-0")
        key = InsightSettings().critical_errors_key
        wait_until(lambda: {m.decode() for m in client.zrange(key, 0, -1)} == ids, timeout=30,
                   message="every critical error id in the shared set")
        if transport == "streams":  # the group did split them
            shares = [value(e.samples(), "agent_errors_total", kind="critical",
                            component="trainer") for e in exporters]
            assert all(shares) and sum(s or 0 for s in shares) == len(ids), shares
    finally:
        for exporter in exporters:
            exporter.stop()
        client.close()
