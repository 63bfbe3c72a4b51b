"""The RAG dashboard (agent-exporter-rag)."""
from __future__ import annotations

from grafana_foundation_sdk.builders import common as sdk_common
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    RAG_CACHE_HIT_MIN_RATIO,
    RAG_LATENCY_P95_SECONDS,
    RAG_LOW_CONFIDENCE_MAX_RATIO,
    RAG_SUCCESS_MIN_RATIO,
)

from .dashboard import dashboard
from .panels import Panel, heatmap, red_above, red_below, stat, timeseries
from .queries import JOB, JOBS, Filter, heatmap_query, query, selector

UID = "agent-exporter-rag"
TITLE = "Agent Exporter · RAG"
SOURCE = Filter("source", "RAG source", f"rag_queries_total{{{selector(JOB)}}}")
SOURCES = selector(JOB, SOURCE)


def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "RAG queries per source: latency, success, fallbacks, cache and answer quality.",
        ["rag"], [JOB, SOURCE],
        [
            queries_per_second(),
            p95_latency(),
            success_ratio(),
            cache_hit_ratio(),
            low_confidence_answers(),
            mean_latency(),
            latency_percentiles(),
            latency_heatmap(),
            queries_by_outcome(),
            success_and_fallback_ratios(),
            cache_hit_ratio_per_source(),
            low_confidence_ratio_per_source(),
            relevance_score_distribution(),
            confidence_score_distribution(),
            mean_relevance_and_confidence().span(24).height(7),
        ])


def queries_per_second() -> Panel:
    return (
        stat("Queries per second", "RAG queries per second over 5 minutes.", "reqps")
        .with_target(query(f"sum(source:rag_queries:rate5m{{{SOURCES}}})", "queries/s"))
    )


def p95_latency() -> Panel:
    return (
        stat(
            "p95 latency",
            "95th percentile query latency; RagLatencyHigh above 2.5 s.",
            "s",
            red_above(RAG_LATENCY_P95_SECONDS, orange=1))
        .with_target(query(
            f"max(source:rag_query_duration_seconds:p95_5m{{{SOURCES}}})",
            "worst source"))
    )


def success_ratio() -> Panel:
    return (
        stat(
            "Success ratio",
            "Share of queries answered (success or fallback) over 5 minutes, worst source; "
            "RagSuccessRatioLow under 90 %.",
            "percentunit",
            red_below(RAG_SUCCESS_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"min(source:rag_queries_success:ratio_rate5m{{{SOURCES}}})",
            "worst source"))
    )


def cache_hit_ratio() -> Panel:
    return (
        stat(
            "Cache hit ratio",
            "Cache hits over lookups over 5 minutes, worst source; RagCacheHitRatioLow under "
            "20 %.",
            "percentunit",
            red_below(RAG_CACHE_HIT_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"min(source:rag_cache_hit:ratio_rate5m{{{SOURCES}}})", "worst source"))
    )


def low_confidence_answers() -> Panel:
    return (
        stat(
            "Low-confidence answers",
            "Share of answers with confidence 0.5 or less, worst source; RagLowConfidenceHigh "
            "above 30 %.",
            "percentunit",
            red_above(RAG_LOW_CONFIDENCE_MAX_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"max(source:rag_confidence_low:ratio_rate5m{{{SOURCES}}})",
            "worst source"))
    )


def mean_latency() -> Panel:
    return (
        stat("Mean latency", "Mean query latency of the whole job over 5 minutes.", "s")
        .with_target(query(f"job:rag_query_duration_seconds:mean5m{{{JOBS}}}", "{{job}}"))
    )


def latency_percentiles() -> Panel:
    return (
        timeseries(
            "Latency percentiles",
            "p50, p95 and p99 query latency per source over 5 minutes; RagLatencyHigh fires "
            "when p95 stays above 2.5 s.",
            "s",
            red_above(RAG_LATENCY_P95_SECONDS))
        .with_target(query(
            f"source:rag_query_duration_seconds:p50_5m{{{SOURCES}}}",
            "{{source}} p50"))
        .with_target(query(
            f"source:rag_query_duration_seconds:p95_5m{{{SOURCES}}}",
            "{{source}} p95"))
        .with_target(query(
            f"source:rag_query_duration_seconds:p99_5m{{{SOURCES}}}",
            "{{source}} p99"))
    )


def latency_heatmap() -> Panel:
    return (
        heatmap("Latency heatmap", "Queries per latency bucket over time.", "s")
        .with_target(heatmap_query(
            "sum by (le) "
            f"(increase(rag_query_duration_seconds_bucket{{{SOURCES}}}[$__rate_interval]))"))
    )


def queries_by_outcome() -> Panel:
    return (
        timeseries(
            "Queries by outcome",
            "Queries per second by source and outcome (success, fallback, failure).",
            "reqps")
        .stacking(sdk_common.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
        .with_target(query(
            f"sum by (source, outcome) (rate(rag_queries_total{{{SOURCES}}}[$__rate_interval]))",
            "{{source}} {{outcome}}"))
    )


def success_and_fallback_ratios() -> Panel:
    return (
        timeseries(
            "Success and fallback ratios",
            "Share of queries answered, and share answered by the fallback path, per source "
            "(seed-004 rag_success_rate, rag_fallback_queries_ratio).",
            "percentunit",
            red_below(RAG_SUCCESS_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"source:rag_queries_success:ratio_rate5m{{{SOURCES}}}",
            "{{source}} success"))
        .with_target(query(
            f"source:rag_queries_fallback:ratio_rate5m{{{SOURCES}}}",
            "{{source}} fallback"))
    )


def cache_hit_ratio_per_source() -> Panel:
    return (
        timeseries(
            "Cache hit ratio per source",
            "Cache hits over lookups per source; RagCacheHitRatioLow fires under 20 %.",
            "percentunit",
            red_below(RAG_CACHE_HIT_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"source:rag_cache_hit:ratio_rate5m{{{SOURCES}}}", "{{source}}"))
    )


def low_confidence_ratio_per_source() -> Panel:
    return (
        timeseries(
            "Low-confidence ratio per source",
            "Share of answers with confidence 0.5 or less per source; RagLowConfidenceHigh "
            "fires above 30 %.",
            "percentunit",
            red_above(RAG_LOW_CONFIDENCE_MAX_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"source:rag_confidence_low:ratio_rate5m{{{SOURCES}}}", "{{source}}"))
    )


def relevance_score_distribution() -> Panel:
    return (
        heatmap(
            "Relevance score distribution",
            "Answered queries per relevance-score bucket (0.1 wide) over time.",
            "none")
        .with_target(heatmap_query(
            f"sum by (le) (increase(rag_relevance_score_bucket{{{SOURCES}}}[$__rate_interval]))"))
    )


def confidence_score_distribution() -> Panel:
    return (
        heatmap(
            "Confidence score distribution",
            "Answered queries per confidence-score bucket over time; 0.5 is the low-confidence "
            "edge.",
            "none")
        .with_target(heatmap_query(
            f"sum by (le) (increase(rag_confidence_score_bucket{{{SOURCES}}}[$__rate_interval]))"))
    )


def mean_relevance_and_confidence() -> Panel:
    return (
        timeseries(
            "Mean relevance and confidence",
            "Mean relevance and confidence scores per source over 5 minutes (seed-004 "
            "rag_avg_relevance_score, rag_avg_confidence_score).",
            "none")
        .min(0)
        .max(1)
        .decimals(2)
        .with_target(query(
            f"source:rag_relevance_score:mean5m{{{SOURCES}}}",
            "{{source}} relevance"))
        .with_target(query(
            f"source:rag_confidence_score:mean5m{{{SOURCES}}}",
            "{{source}} confidence"))
    )
