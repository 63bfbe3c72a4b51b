"""Hostile input through the real CLI and a real redis-server: a scrape that always parses, a
scrape that never waits for a whole batch, every event counted once, records that keep their
origin."""
from __future__ import annotations

import threading
import time

import orjson
import pytest
import redis
import requests

from exporter.publisher import Publisher
from tests.support.exposition import checked_scrape
from tests.support.procs import REPO, Exporter, value, wait_until

pytestmark = pytest.mark.integration

NO_HOST = ("--no-collector.host", "--no-collector.gpu")
NO_COLLECTORS = (*NO_HOST, "--no-collector.redis_state")


def counted(exporter: Exporter, metric: str, **labels: str) -> float:
    return value(exporter.samples(), metric, **labels) or 0.0


def handled(exporter: Exporter, source: str) -> float:
    """Events of `source` applied or counted invalid."""
    return sum(v for (name, labels), v in exporter.samples().items()
               if name in ("agent_exporter_events_total", "agent_exporter_events_invalid_total")
               and ("source", source) in labels)


def invalid(exporter: Exporter, reason: str) -> float:
    return counted(exporter, "agent_exporter_events_invalid_total", source="events:metrics",
                   reason=reason)


CLASH_CONFIG = """
metrics:
  - match: h
    type: histogram
key_checks:
  - pattern: "clash:{item}:h"
    type: hash
    metric: clash
    help: A hash whose numeric fields become clash_<field>.
"""


def test_records_and_key_checks_never_expose_one_name_twice(redis_url, start_exporter):
    """The examples that broke scrapes: a record named like a key check's family made later, and
    the reverse; `le` on a histogram; a histogram beside a gauge of its samples' names; gauges
    ending in _total; a built-in's name; 400 tags. What loses is counted, never exported."""
    exporter = start_exporter(redis_url, *NO_HOST, config=CLASH_CONFIG)
    client = redis.Redis.from_url(redis_url)
    records = [
        {"metric_name": "clash_early", "value": 1},  # before the key check derives it
        {"metric_name": "h", "value": 0.5, "tags": {"le": "5"}},
        {"metric_name": "h", "value": 0.5},
        {"metric_name": "h_count", "value": 1},
        {"metric_name": "swarm_total", "value": 1},
        {"metric_name": "agent_queue_depth", "value": 3},
        {"metric_name": "wide", "value": 1, "tags": {f"tag_{i}": "v" for i in range(400)}},
    ]
    for record in records:
        client.publish("events:metrics", orjson.dumps(record))
    wait_until(lambda: handled(exporter, "events:metrics") == len(records),
               message="every record counted")
    client.hset("clash:a:h", mapping={"early": 1, "late": 2})
    wait_until(lambda: counted(exporter, "clash_late", item="a") == 2,
               message="the key check's derived family")
    client.publish("events:metrics", orjson.dumps({"metric_name": "clash_late", "value": 7}))
    wait_until(lambda: handled(exporter, "events:metrics") == len(records) + 1)

    text = checked_scrape(exporter.url)
    s = exporter.samples()
    assert value(s, "clash_early") == 1  # the record came first and keeps it
    assert value(s, "clash_early", item="a") is None
    assert value(s, "clash_late", item="a") == 2 and value(s, "clash_late") is None
    assert value(s, "agent_exporter_key_check_values_skipped", check="clash:{item}:h",
                 reason="name_collision") == 1
    assert value(s, "h_count") == 1.0  # the histogram's _count, not the gauge
    assert invalid(exporter, "bad_label_name") == 1
    assert invalid(exporter, "bad_metric_name") == 2  # h_count and swarm_total as gauges
    assert invalid(exporter, "metric_name_collision") == 2  # agent_queue_depth, clash_late
    assert invalid(exporter, "too_many_labels") == 1
    assert not [line for line in text.splitlines() if line.startswith("wide")]
    log = exporter.proc.log()
    assert "agent_queue_depth (gauge) is already the built-in gauge agent_queue_depth" in log


def test_a_key_check_named_like_a_built_in_stops_start_up(tmp_path):
    exporter = Exporter(tmp_path, "redis://127.0.0.1:1/0", NO_HOST, config=(
        "key_checks:\n  - key: q\n    metric: agent_busy\n    help: Clashes.\n"))
    assert exporter.proc.popen.wait(30) == 2
    assert "key_checks: agent_busy (gauge) would expose agent_busy, which the built-in gauge " \
           "agent_busy exposes" in exporter.proc.log()


def test_a_scrape_waits_for_a_few_events_not_for_a_whole_read(redis_url, start_exporter):
    """600 stream entries of 1 500 events each, read by one XREADGROUP: one dispatch of 900 000
    events (1-2 s here). Scrapes during it get in and see the count grow; they used to wait for
    the whole read and saw only 0 or all of it."""
    client = redis.Redis.from_url(redis_url)
    batch = orjson.dumps([{"agent": f"agent-{i % 200}", "status": "done"} for i in range(1500)])
    pipe = client.pipeline(transaction=False)
    for _ in range(600):
        pipe.xadd("events:tasks:updates", {"data": batch})
    pipe.execute()
    total = 600 * 1500
    scrapes: list[tuple[float, float]] = []  # (seconds, events applied)
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            text = requests.get(exporter_url[0] + "/metrics", timeout=30).text
            seconds = time.perf_counter() - start
            scrapes.append((seconds, sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                         if line.startswith("agent_exporter_events_total{"))))
            stop.wait(0.02)

    exporter_url: list[str] = []
    exporter = start_exporter(redis_url, *NO_COLLECTORS, "--source", "streams",
                              config="streams:\n  batch: 600\n", ready=False)
    exporter_url.append(exporter.url)
    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        wait_until(lambda: scrapes and scrapes[-1][1] == total, timeout=120,
                   message="every event applied")
    finally:
        stop.set()
        scraper.join()
    partial = {events for _, events in scrapes if 0 < events < total}
    assert len(partial) >= 3, f"scrapes waited for the whole read: {scrapes}"


def test_every_event_is_counted_once_invalid_ones_are_not_lost_as_well(redis_url, start_exporter):
    exporter = start_exporter(redis_url, *NO_COLLECTORS)
    events = Publisher(redis_url, publisher_id="rag-client")
    for i in range(20):
        if i % 5 == 2:
            events.rag_query(-0.25, True)  # negative: invalid
        elif i % 5 == 4:
            events.rag_query(0.12, True, relevance_score=1.7)  # out of range: invalid
        else:
            events.rag_query(0.1, True)
    client = redis.Redis.from_url(redis_url)
    client.publish("events:rag:queries", orjson.dumps(  # a publisher's number gone wild
        {"duration_seconds": 0.1, "success": True, "_pub": "rag-client", "_seq": 9 * 10**18}))
    client.publish("events:rag:queries", orjson.dumps(  # and 3 events really lost after it
        {"duration_seconds": 0.1, "success": True, "_pub": "rag-client", "_seq": 9 * 10**18 + 4}))
    wait_until(lambda: handled(exporter, "events:rag:queries") == 22)
    s = exporter.samples()
    assert value(s, "agent_exporter_events_total", source="events:rag:queries", type="rag") == 14
    assert value(s, "agent_exporter_events_invalid_total", source="events:rag:queries",
                 reason="negative") == 4
    assert value(s, "agent_exporter_events_invalid_total", source="events:rag:queries",
                 reason="out_of_range") == 4
    assert value(s, "agent_exporter_events_lost_total", source="events:rag:queries") == 3


def test_seed_records_keep_their_origin_and_map_to_prometheus_names(redis_url, start_exporter):
    config = (REPO / "examples" / "seed-004-records.yml").read_text()
    exporter = start_exporter(redis_url, *NO_COLLECTORS, config=config)
    for host in ("node-a", "node-b"):
        events = Publisher(redis_url)
        meta = {"hostname": host, "environment": "prod", "version": "1.4.2"}
        events.metric("coordination_messages_sent", 12, "count", {"message_type": "handoff"},
                      collector="coordination", **meta)
        events.metric("coordination_message_latency_ms", 40, "milliseconds",
                      {"message_type": "handoff"}, collector="coordination", **meta)
        events.metric("query_routing_confidence", 0.4, "score", {"component": "query"},
                      collector="query", **meta)
        events.metric("user_satisfaction_score", 4, "rating", {}, collector="user", **meta)
        events.metric("user_active_sessions", 7 if host == "node-a" else 3, "count", {},
                      collector="user", **meta)
        events.metric("user_error_rate_percent", 2, "percent", {}, collector="user", **meta)
        events.metric("agent_queue_depth", 5, "count", {"agent_id": "a"}, collector="agent",
                      **meta)
    wait_until(lambda: handled(exporter, "events:metrics") == 14)
    checked_scrape(exporter.url)
    s = exporter.samples()
    for host, sessions in (("node-a", 7), ("node-b", 3)):
        origin = {"hostname": host, "environment": "prod"}
        assert value(s, "user_active_sessions", **origin) == sessions
        assert value(s, "coordination_messages_total", message_type="handoff", **origin) == 12
        assert value(s, "coordination_message_latency_seconds_bucket", message_type="handoff",
                     le="0.05", **origin) == 1
        assert value(s, "query_routing_confidence_score_bucket", le="0.5", **origin) == 1
        assert value(s, "user_satisfaction_ratio_bucket", le="0.7", **origin) == 0  # 4 stars
        assert value(s, "user_satisfaction_ratio_bucket", le="0.9", **origin) == 1
    assert not [name for name, _ in s if name.startswith(("user_error", "agent_queue_depth"))]
    assert value(s, "agent_exporter_events_invalid_total", source="events:metrics") is None
