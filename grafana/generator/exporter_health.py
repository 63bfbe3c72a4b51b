"""The Exporter health dashboard (agent-exporter-exporter)."""
from __future__ import annotations

from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard

from .dashboard import dashboard
from .panels import (
    Panel,
    bars,
    red_above,
    red_below,
    stat,
    states,
    timeseries,
    value_texts,
)
from .queries import INSTANCE, INSTANCES, JOB, Filter, query, selector

UID = "agent-exporter-exporter"
TITLE = "Agent Exporter · Exporter health"
EVENT_SOURCE = Filter("event_source", "Event source",
                      f"agent_exporter_events_total{{{selector(JOB, INSTANCE)}}}", "source")
SOURCES = selector(JOB, INSTANCE, EVENT_SOURCE)


def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "The exporter itself: scrape, Redis connection, event intake and rejects, streams, "
        "collectors, key checks and series budgets.",
        ["exporter"], [JOB, INSTANCE, EVENT_SOURCE],
        [
            exporter_scraped(),
            redis_connection(),
            events_per_second(),
            invalid_share_10_min(),
            events_lost_since_start(),
            version(),
            events_per_second_by_source(),
            invalid_events_by_reason(),
            invalid_share_by_source(),
            lost_events(),
            ingest_lag_p95(),
            redis_connection_and_reconnects(),
            pub_sub_canary_age(),
            stream_consumer_group(),
            stream_entries_read_and_acknowledged(),
            collector_duration(),
            collector_success(),
            key_check_problems(),
            series_per_metric().height(10),
            series_overflow_and_expiry().height(10),
            scrape_duration().span(8),
            exporter_memory().span(8),
            exporter_cpu().span(8),
        ])


def exporter_scraped() -> Panel:
    return (
        stat(
            "Exporter scraped",
            "Whether Prometheus can scrape each exporter (up); AgentExporterDown fires after 2 "
            "minutes down.",
            "none",
            red_below(1))
        .mappings(value_texts((1, "up", "green"), (0, "down", "red")))
        .with_target(query(f"up{{{INSTANCES}}}", "{{instance}}"))
    )


def redis_connection() -> Panel:
    return (
        stat(
            "Redis connection",
            "Whether the exporter is connected to Redis; ExporterRedisDown fires after 1 "
            "minute down.",
            "none",
            red_below(1))
        .mappings(value_texts((1, "up", "green"), (0, "down", "red")))
        .with_target(query(f"agent_exporter_redis_up{{{INSTANCES}}}", "{{instance}}"))
    )


def events_per_second() -> Panel:
    return (
        stat("Events per second", "Valid events handled per second, all sources.", "cps")
        .with_target(query(f"sum(source:agent_exporter_events:rate5m{{{SOURCES}}})", "events/s"))
    )


def invalid_share_10_min() -> Panel:
    return (
        stat(
            "Invalid share (10 min)",
            "Largest share of invalid events of one source over 10 minutes; "
            "ExporterEventsInvalid fires above 5 %.",
            "percentunit",
            red_above(0.05))
        .min(0)
        .max(1)
        .with_target(query(
            f"max(source:agent_exporter_events_invalid:ratio_rate10m{{{SOURCES}}})",
            "worst source"))
    )


def events_lost_since_start() -> Panel:
    return (
        stat(
            "Events lost since start",
            "Pub/sub events counted lost from publisher sequence gaps since the exporter "
            "started; ExporterEventsLost fires on any increase.",
            "short",
            red_above(1))
        .decimals(0)
        .with_target(query(f"sum(agent_exporter_events_lost_total{{{SOURCES}}})", "lost"))
    )


def version() -> Panel:
    return (
        stat("Version", "Exporter version of each instance (agent_exporter_build_info).", "none")
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.CENTER)
        .text_mode(common.BigValueTextMode.NAME)
        .with_target(query(
            f"count by (version) (agent_exporter_build_info{{{INSTANCES}}})",
            "{{version}}"))
    )


def events_per_second_by_source() -> Panel:
    return (
        timeseries(
            "Events per second by source",
            "Valid events per second per channel or stream and event type.",
            "cps")
        .with_target(query(
            f"sum by (source, type) (source:agent_exporter_events:rate5m{{{SOURCES}}})",
            "{{source}} ({{type}})"))
    )


def invalid_events_by_reason() -> Panel:
    return (
        timeseries(
            "Invalid events by reason",
            "Events dropped because they did not fit their schema, per second, by source and "
            "reason (the log names each).",
            "cps")
        .with_target(query(
            "sum by (source, reason) "
            f"(rate(agent_exporter_events_invalid_total{{{SOURCES}}}[$__rate_interval]))",
            "{{source}}: {{reason}}"))
    )


def invalid_share_by_source() -> Panel:
    return (
        timeseries(
            "Invalid share by source",
            "invalid / (valid + invalid) per source over 10 minutes; ExporterEventsInvalid "
            "fires above 5 %.",
            "percentunit",
            red_above(0.05))
        .min(0)
        .max(1)
        .with_target(query(
            f"source:agent_exporter_events_invalid:ratio_rate10m{{{SOURCES}}}",
            "{{source}}"))
    )


def lost_events() -> Panel:
    return (
        timeseries(
            "Lost events",
            "Pub/sub events lost (publisher sequence gaps) per source; ExporterEventsLost "
            "fires on any.",
            "short",
            red_above(1))
        .min(0)
        .with_target(query(
            "sum by (source) "
            f"(increase(agent_exporter_events_lost_total{{{SOURCES}}}[$__rate_interval]))",
            "{{source}}"))
    )


def ingest_lag_p95() -> Panel:
    return (
        timeseries(
            "Ingest lag (p95)",
            "95th percentile delay from an event's publish timestamp to its handling, per "
            "source.",
            "s")
        .min(0)
        .with_target(query(
            f"source:agent_exporter_event_lag_seconds:p95_5m{{{SOURCES}}}",
            "{{source}}"))
    )


def redis_connection_and_reconnects() -> Panel:
    return (
        timeseries(
            "Redis connection and reconnects",
            "1 while connected to Redis and every source reads, 1 per source while it reads, "
            "and reconnects per interval.",
            "short",
            red_below(1))
        .min(0)
        .with_target(query(f"agent_exporter_redis_up{{{INSTANCES}}}", "{{instance}} connected"))
        .with_target(query(f"agent_exporter_source_up{{{INSTANCES}}}",
                           "{{instance}} {{source}} reading"))
        .with_target(query(
            f"increase(agent_exporter_redis_reconnects_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}} reconnects"))
    )


def pub_sub_canary_age() -> Panel:
    return (
        timeseries(
            "Pub/sub canary age",
            "Seconds since the exporter's own pub/sub canary came back (one every 5 s); a "
            "growing age means a dead subscription, which the exporter then reconnects.",
            "s")
        .min(0)
        .with_target(query(f"agent_exporter_canary_age_seconds{{{INSTANCES}}}", "{{instance}}"))
    )


def stream_consumer_group() -> Panel:
    return (
        timeseries(
            "Stream consumer group",
            "Redis Streams mode: entries not yet delivered to the group (lag) and delivered "
            "but not acknowledged (pending), per stream.",
            "short")
        .min(0)
        .with_target(query(f"agent_exporter_stream_lag_entries{{{INSTANCES}}}", "{{stream}} lag"))
        .with_target(query(
            f"agent_exporter_stream_pending_entries{{{INSTANCES}}}",
            "{{stream}} pending"))
    )


def stream_entries_read_and_acknowledged() -> Panel:
    return (
        timeseries(
            "Stream entries read and acknowledged",
            "Redis Streams mode: entries read through the consumer group and acknowledged by "
            "checkpoints, per second.",
            "cps")
        .min(0)
        .with_target(query(
            "sum by (stream) "
            f"(rate(agent_exporter_stream_entries_read_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{stream}} read"))
        .with_target(query(
            "sum by (stream) "
            f"(rate(agent_exporter_stream_entries_acked_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{stream}} acked"))
    )


def collector_duration() -> Panel:
    return (
        timeseries(
            "Collector duration",
            "Time each scrape-time collector (host, gpu, redis_state) took on the last scrape.",
            "s")
        .min(0)
        .with_target(query(
            f"agent_exporter_collector_duration_seconds{{{INSTANCES}}}",
            "{{instance}} {{collector}}"))
    )


def collector_success() -> Panel:
    return (
        states(
            "Collector success",
            "Whether each collector finished without error within its deadline; "
            "ExporterCollectorFailing fires after 5 minutes of failures.",
            value_texts((1, "ok", "green"), (0, "failed", "red")),
            red_below(1))
        .with_target(query(
            f"agent_exporter_collector_success{{{INSTANCES}}}",
            "{{instance}} {{collector}}"))
    )


def key_check_problems() -> Panel:
    return (
        timeseries(
            "Key check problems",
            "Redis key checks: values read but not exported (by reason), keys over max_keys, "
            "and scans stopped at max_scan_calls.",
            "short",
            red_above(1))
        .min(0)
        .with_target(query(
            f"sum by (check, reason) (agent_exporter_key_check_values_skipped{{{INSTANCES}}})",
            "{{check}} values skipped: {{reason}}"))
        .with_target(query(
            f"sum by (check) (agent_exporter_key_check_keys_skipped{{{INSTANCES}}})",
            "{{check}} keys skipped"))
        .with_target(query(
            f"sum by (check) (agent_exporter_key_check_scan_truncated{{{INSTANCES}}})",
            "{{check}} scan truncated"))
    )


def series_per_metric() -> Panel:
    return (
        bars(
            "Series per metric",
            "Series each labelled metric holds now, against its budget (default 10 000).",
            "short",
            red_above(10000, orange=5000))
        .min(0)
        .with_target(query(
            f"sort_desc(sum by (metric) (agent_exporter_series{{{INSTANCES}}}))",
            "{{metric}}").instant())
    )


def series_overflow_and_expiry() -> Panel:
    return (
        timeseries(
            "Series overflow and expiry",
            "Label sets sent to __overflow__ because a metric hit its series budget "
            "(ExporterSeriesOverflow fires on any), and series expired after their TTL.",
            "short",
            red_above(1))
        .min(0)
        .with_target(query(
            "sum by (metric) "
            f"(increase(agent_exporter_series_overflow_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{metric}} overflow"))
        .with_target(query(
            "sum by (metric) "
            f"(increase(agent_exporter_series_expired_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{metric}} expired"))
    )


def scrape_duration() -> Panel:
    return (
        timeseries(
            "Scrape duration",
            "How long Prometheus took to scrape each exporter (scrape timeout 10 s).",
            "s")
        .min(0)
        .with_target(query(f"scrape_duration_seconds{{{INSTANCES}}}", "{{instance}}"))
    )


def exporter_memory() -> Panel:
    return (
        timeseries("Exporter memory", "Resident memory of the exporter process.", "bytes")
        .min(0)
        .with_target(query(f"process_resident_memory_bytes{{{INSTANCES}}}", "{{instance}}"))
    )


def exporter_cpu() -> Panel:
    return (
        timeseries(
            "Exporter CPU",
            "CPU used by the exporter process (1 = one full core).",
            "percentunit")
        .min(0)
        .with_target(query(
            f"rate(process_cpu_seconds_total{{{INSTANCES}}}[$__rate_interval])",
            "{{instance}}"))
    )
