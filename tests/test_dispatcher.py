"""The ingest hot path in-process: every domain's schema, bad input, batches and loss counting."""
from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.support.events import BAD_EVENTS, channels, events
from tests.support.ingest import Ingest
from tests.support.procs import value


def test_seed_shapes_feed_the_contract_metrics():
    ingest = Ingest()
    ingest.send("events:agents:status", {"agentType": "ml-engineer", "status": "busy", "taskCount": 3})
    ingest.send("events:agents:status", {"agent_type": "ai-engineer", "agent_id": "ai-1",
                                         "status": "offline", "queue_depth": 4, "load": 0.5})
    ingest.send("events:tasks:updates", {"taskId": "t1", "agent": "ml-engineer", "status": "done",
                                         "duration_seconds": 1700, "timestamp": "2026-01-01T00:00:00Z"})
    ingest.send("events:tasks:updates", {"taskId": "t2", "agent": "ml-engineer", "status": "failed"})
    ingest.send("events:training:progress", {"projectId": "proj-1", "step": 100, "loss": 0.42,
                                             "wer": 0.12, "learning_rate": 0.001})
    ingest.send("events:rag:queries", {"duration_seconds": 0.3, "success": True, "cache_hit": True,
                                       "relevance_score": 0.9, "confidence_score": 0.4,
                                       "fallback": False, "source": "docs"})
    ingest.send("events:rag:queries", {"duration_seconds": 2.0, "success": True, "fallback": True,
                                       "cache_hit": False})
    ingest.send("events:rag:queries", {"duration_seconds": 5.0, "success": False})
    ingest.send("events:workflows:steps", {"workflowId": "wf", "stepId": "embed", "duration_seconds": 650})
    ingest.send("events:errors:monitoring", {"component": "gpu_metrics_collector", "error": "boom"})
    ingest.send("events:metrics", {"metric_name": "swarm_total_agents", "value": 7, "unit": "count",
                                   "tags": {"component": "swarm"}, "collector": "agent"})
    s = ingest.samples()
    assert value(s, "agent_busy", agent="ml-engineer") == 1
    assert value(s, "agent_current_tasks", agent="ml-engineer") == 3
    assert value(s, "agent_available", agent="ml-engineer") == 1
    assert value(s, "agent_busy", agent="ai-1") == 0
    assert value(s, "agent_available", agent="ai-1") == 0
    assert value(s, "agent_queue_depth", agent="ai-1") == 4
    assert value(s, "agent_load_ratio", agent="ai-1") == 0.5
    assert value(s, "agent_last_seen_timestamp_seconds", agent="ai-1") > 1.7e9
    assert value(s, "agent_tasks_total", agent="ml-engineer", status="done") == 1
    assert value(s, "agent_tasks_total", agent="ml-engineer", status="failed") == 1
    assert value(s, "agent_task_duration_seconds_bucket", agent="ml-engineer", status="done", le="1800.0") == 1
    assert value(s, "agent_task_duration_seconds_bucket", agent="ml-engineer", status="done", le="1200.0") == 0
    assert value(s, "agent_task_duration_seconds_count", agent="ml-engineer", status="failed") is None
    assert value(s, "training_loss", project="proj-1") == 0.42
    assert value(s, "training_wer", project="proj-1") == 0.12
    assert value(s, "training_step", project="proj-1") == 100
    assert value(s, "training_metric", project="proj-1", name="learning_rate") == 0.001
    assert value(s, "training_updates_total", project="proj-1") == 1
    assert value(s, "rag_queries_total", source="docs", outcome="success") == 1
    assert value(s, "rag_queries_total", source="default", outcome="fallback") == 1
    assert value(s, "rag_queries_total", source="default", outcome="failure") == 1
    assert value(s, "rag_cache_requests_total", source="docs", result="hit") == 1
    assert value(s, "rag_cache_requests_total", source="default", result="miss") == 1
    assert value(s, "rag_confidence_score_bucket", source="docs", le="0.5") == 1
    assert value(s, "rag_query_duration_seconds_count", source="default") == 2
    assert value(s, "workflow_step_duration_seconds_bucket", workflow="wf", step="embed", le="600.0") == 0
    assert value(s, "workflow_step_duration_seconds_bucket", workflow="wf", step="embed", le="900.0") == 1
    assert value(s, "agent_errors_total", kind="monitoring", component="gpu_metrics_collector") == 1
    assert value(s, "swarm_total_agents", component="swarm") == 7
    assert value(s, "agent_exporter_events_total", source="events:rag:queries", type="rag") == 3
    assert value(s, "agent_exporter_event_lag_seconds_count", source="events:tasks:updates") == 1


def test_diverged_loss_is_kept_as_nan_and_inf():
    ingest = Ingest()
    ingest.send("events:training:progress", {"projectId": "p", "loss": "NaN", "wer": "Infinity"})
    s = ingest.samples()
    assert math.isnan(value(s, "training_loss", project="p"))
    assert value(s, "training_wer", project="p") == math.inf




def test_each_bad_event_is_dropped_whole_and_counted_by_reason():
    ingest = Ingest()
    for channel, event, _ in BAD_EVENTS:
        ingest.send(channel, event)
    assert ingest.series() == {}, "an invalid event left a series behind"
    s = ingest.samples()
    expected: dict[tuple[str, str], int] = {}
    for channel, _, reason in BAD_EVENTS:
        expected[(channel, reason)] = expected.get((channel, reason), 0) + 1
    for (channel, reason), count in expected.items():
        assert value(s, "agent_exporter_events_invalid_total", source=channel, reason=reason) == count, reason
    ingest.send("events:tasks:updates", {"agent": "a", "status": "done"})
    assert value(ingest.samples(), "agent_tasks_total", agent="a", status="done") == 1


def test_a_late_bad_field_applies_nothing_of_the_event():
    ingest = Ingest()
    ingest.send("events:agents:status", {"agentType": "a", "status": "busy", "taskCount": 2,
                                         "queueDepth": 1, "load": "high"})
    ingest.send("events:training:progress",
                b'{"projectId": "p", "step": 1, "loss": 0.5, "lr": 0.1, "wer": "high"}')
    assert ingest.series() == {}


def test_a_batch_applies_each_valid_element_and_counts_the_rest():
    ingest = Ingest()
    ingest.send("events:tasks:updates", [{"agent": "a", "status": "done"}, {"agent": "a"}, 7,
                                         {"agent": "b", "status": "done"}])
    s = ingest.samples()
    assert value(s, "agent_tasks_total", agent="a", status="done") == 1
    assert value(s, "agent_tasks_total", agent="b", status="done") == 1
    assert value(s, "agent_exporter_events_invalid_total", source="events:tasks:updates",
                 reason="missing_field") == 1
    assert value(s, "agent_exporter_events_invalid_total", source="events:tasks:updates",
                 reason="not_object") == 1


def test_sequence_gaps_count_lost_events_per_publisher():
    ingest = Ingest()
    for seq in (1, 2, 5, 6, 10):
        ingest.send("events:tasks:updates", {"agent": "a", "status": "done", "_pub": "p1", "_seq": seq})
    for seq in (1, 2):  # another publisher, no gap; then p1 restarts at 1: not a loss
        ingest.send("events:tasks:updates", {"agent": "a", "status": "done", "_pub": "p2", "_seq": seq})
    ingest.send("events:tasks:updates", {"agent": "a", "status": "done", "_pub": "p1", "_seq": 1})
    assert value(ingest.samples(), "agent_exporter_events_lost_total", source="events:tasks:updates") == 5


def test_generic_records_follow_their_mapping():
    from exporter.domains.mappings import parse_mappings

    ingest = Ingest()
    ingest.domains["metrics"].reload(parse_mappings([
        {"match": "cpu_utilization_percent", "name": "host_cpu_utilization_ratio", "scale": 0.01,
         "labels": ["component"]},
        {"match": "requests", "type": "counter"},
        {"match": "latency", "type": "histogram", "buckets": [0.1, 1]},
        {"match": "rag_avg_*", "drop": True},
    ], "metrics", "test"))
    record = {"collector": "system", "hostname": "h", "environment": "prod", "version": "1"}
    ingest.send("events:metrics", {**record, "metric_name": "cpu_utilization_percent", "value": 55,
                                   "unit": "percent", "tags": {"component": "system", "x": "y"}})
    for _ in range(3):
        ingest.send("events:metrics", {"metric_name": "requests", "value": 2})
    ingest.send("events:metrics", {"metric_name": "latency", "value": 0.5})
    ingest.send("events:metrics", {"metric_name": "rag_avg_query_time", "value": 1})
    ingest.send("events:metrics", {"metric_name": "requests", "value": -1})
    s = ingest.samples()
    assert value(s, "host_cpu_utilization_ratio", hostname="h", environment="prod",
                 component="system") == 0.55
    assert value(s, "requests_total") == 6
    assert value(s, "latency_bucket", le="1.0") == 1
    assert "rag_avg_query_time" not in ingest.series()
    assert value(s, "agent_exporter_events_invalid_total", source="events:metrics", reason="negative") == 1
    ingest.send("events:metrics", {"metric_name": "requests", "value": 1, "tags": {"a": "b"}})
    assert value(ingest.samples(), "agent_exporter_events_invalid_total", source="events:metrics",
                 reason="label_mismatch") == 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel=channels, event=events | st.binary(max_size=64))
def test_any_input_is_either_applied_or_counted_never_raised(channel, event):
    ingest = Ingest()
    payload = event if isinstance(event, bytes) else orjson.dumps(event)
    ingest.send(channel, payload)
    s = ingest.samples()
    applied = sum(v for (name, _), v in s.items() if name == "agent_exporter_events_total")
    rejected = sum(v for (name, _), v in s.items() if name == "agent_exporter_events_invalid_total")
    assert applied + rejected == 1
    if rejected:
        assert ingest.series() == {}
    assert "".join(ingest.store.render())  # and it still renders


def test_an_invalid_event_is_counted_once_and_not_lost_as_well():
    """Every event is applied, invalid or (only if it never arrived) lost: an invalid event
    still moves its publisher's sequence on, a message dropped unread too when its number ends
    it (as the publisher writes it), and a huge jump is a restart, not losses."""
    ingest = Ingest()
    rag = "events:rag:queries"

    def send(seq: int, **fields) -> None:
        ingest.send(rag, {"duration_seconds": 0.1, "success": True, **fields, "_pub": "p", "_seq": seq})

    send(1)
    send(2, duration_seconds=-0.25)  # invalid: negative
    send(3, relevance_score=1.7)  # invalid: out of range
    ingest.send(rag, b'{"duration_seconds": 1e999, "_pub":"p","_seq":4}')  # not JSON, numbered
    ingest.send(rag, b'{"x":"' + b"y" * 70_000 + b'","_pub":"p","_seq":5}')  # too large, numbered
    send(6)
    send(9_000_000_000_000_000_000)  # a jump past MAX_SEQUENCE_GAP: a restart
    send(9_000_000_000_000_000_001)
    send(9_000_000_000_000_000_004)  # a real gap: 2 and 3 never arrived
    s = ingest.samples()
    assert value(s, "agent_exporter_events_total", source=rag, type="rag") == 5
    assert sum(v for (n, labels), v in s.items()
               if n == "agent_exporter_events_invalid_total") == 4
    assert value(s, "agent_exporter_events_lost_total", source=rag) == 2


def test_records_keep_their_origin_as_labels():
    from exporter.domains.mappings import parse_origin_labels

    ingest = Ingest()
    for host in ("h1", "h2"):
        ingest.send("events:metrics", {"metric_name": "swarm_total_agents", "value": 3, "tags":
                                       {"component": "swarm"}, "hostname": host,
                                       "environment": "prod", "collector": "agent",
                                       "version": "1.2"})
    s = ingest.samples()
    for host in ("h1", "h2"):
        assert value(s, "swarm_total_agents", hostname=host, environment="prod",
                     component="swarm") == 3
    ingest.send("events:metrics", {"metric_name": "other_ratio", "value": 1, "tags":
                                   {"hostname": "x"}, "hostname": "h1"})
    assert value(ingest.samples(), "agent_exporter_events_invalid_total", source="events:metrics",
                 reason="duplicate_label") == 1

    versioned = Ingest(origin_labels=parse_origin_labels(["collector", "version"], "o", "test"))
    versioned.send("events:metrics", {"metric_name": "swarm_total_agents", "value": 3,
                                      "collector": "agent", "version": 2, "hostname": "h1"})
    assert value(versioned.samples(), "swarm_total_agents", collector="agent", version="2") == 3


@pytest.mark.parametrize("records, reason", [
    ([{"metric_name": "agent_queue_depth", "value": 2}], "metric_name_collision"),
    ([{"metric_name": "x", "value": 1}, {"metric_name": "x_count", "value": 1}], "bad_metric_name"),
    ([{"metric_name": "h", "value": 1}, {"metric_name": "h_count", "value": 1}],
     "metric_name_collision"),  # histogram h's samples: h_count, the counter h_count_total's family
    ([{"metric_name": "g", "value": 1}, {"metric_name": "g", "value": 1, "tags": {"a": "b"}}],
     "label_mismatch"),
    ([{"metric_name": "c", "value": 1}, {"metric_name": "c_total", "value": 1}],
     "metric_name_collision"),  # a gauge c_total: the counter c exposes that name
    ([{"metric_name": "h", "value": 1, "tags": {"le": "5"}}], "bad_label_name"),
    ([{"metric_name": "g", "value": 1, "tags": {"quantile": "5"}}], "bad_label_name"),
    ([{"metric_name": "g", "value": 1, "tags": {"__name__": "x"}}], "bad_label_name"),
    ([{"metric_name": "g_total", "value": 1}], "bad_metric_name"),
    ([{"metric_name": "latency_ms", "value": 1}], "bad_metric_name"),
    ([{"metric_name": "h", "value": -1}], "negative"),
    ([{"metric_name": "g", "value": 1, "tags": {f"t{i}": "v" for i in range(33)}}],
     "too_many_labels"),
    ([{"metric_name": "g", "value": 1, "tags": {f"t{i}": "v" for i in range(31)}}],
     "too_many_labels"),  # 31 tags + hostname + environment
])
def test_a_record_the_exposition_cannot_hold_is_refused_with_its_reason(records, reason):
    from exporter.domains.mappings import parse_mappings

    ingest = Ingest(metrics=parse_mappings([{"match": "h", "type": "histogram"},
                                            {"match": "h_count", "type": "counter"},
                                            {"match": "c", "type": "counter"}], "m", "test"))
    for record in records:
        ingest.send("events:metrics", record)
    s = ingest.samples()
    assert value(s, "agent_exporter_events_invalid_total", source="events:metrics",
                 reason=reason) == 1
    text = ingest.text()
    assert len(list(parse_text(text))) and len(list(parse_om(ingest.text(True) + "# EOF\n")))


def test_a_channel_name_of_any_length_makes_a_bounded_source_label():
    ingest = Ingest()
    channel = "events:errors:" + "k" * 5000
    ingest.dispatcher.dispatch("events:errors:*", channel, orjson.dumps({"component": "c"}))
    sources = {dict(labels)["source"] for name, labels in ingest.samples()
               if name == "agent_exporter_events_total"}
    assert sources == {channel[:199] + "…"}
    # the errors domain refuses a kind that long as a label (label_too_long): counted, not applied
    assert value(ingest.samples(), "agent_exporter_events_invalid_total", source=channel[:199] + "…",
                 reason="label_too_long") == 1


def test_the_bookkeeping_of_channels_a_pattern_matches_stays_bounded(monkeypatch):
    from exporter import dispatcher

    monkeypatch.setattr(dispatcher, "MAX_SOURCES", 50)
    ingest = Ingest()
    for i in range(500):
        ingest.send(f"events:errors:kind{i}", {"component": "c", "_pub": "p", "_seq": 1})
    assert len(ingest.dispatcher._series) <= 50 and len(ingest.dispatcher._sequences) <= 50
    assert sum(v for (name, _), v in ingest.samples().items() if name == "agent_errors_total") == 500
