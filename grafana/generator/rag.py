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

from .dashboard import dashboard, row
from .panels import Panel, heatmap, red_above, red_below, stat, timeseries
from .queries import JOB, JOBS, Filter, heatmap_query, histogram_p95, query, selector

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
            row("Seed 004 windows: query performance 15 min, retrieval quality 30 min"),
            queries_15_min().span(6),
            latency_15_min().span(12),
            success_ratio_15_min().span(6),
            relevance_and_confidence_30_min(),
            low_confidence_and_fallback_30_min(),
            row("Query analysis"),
            analyses_per_second(),
            analysis_time_p95(),
            low_confidence_routings(),
            misroutes_per_analysis(),
            agents_per_query(),
            query_complexity(),
            classification_accuracy().span(24).height(4),
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


# -- seed 004's RAG collector windows (recording rules in rag.rules.yml) ----------------------

def queries_15_min() -> Panel:
    return (
        stat("Queries (15 min)", "RAG queries in the last 15 minutes (seed-004 rag_query_count).",
             "short")
        .decimals(0)
        .with_target(query(f"sum(job:rag_queries:increase15m{{{JOBS}}})", "queries"))
    )


def latency_15_min() -> Panel:
    return (
        stat(
            "Latency (15 min)",
            "Mean, median and p95 query latency over 15 minutes (seed-004 rag_avg_query_time, "
            "rag_median_query_time, rag_p95_query_time); RagLatencyHigh watches p95 over 5 "
            "minutes.",
            "s")
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .with_target(query(f"max(job:rag_query_duration_seconds:mean15m{{{JOBS}}})", "mean"))
        .with_target(query(f"max(job:rag_query_duration_seconds:p50_15m{{{JOBS}}})", "median"))
        .with_target(query(f"max(job:rag_query_duration_seconds:p95_15m{{{JOBS}}})", "p95"))
    )


def success_ratio_15_min() -> Panel:
    return (
        stat(
            "Success ratio (15 min)",
            "Share of queries answered over 15 minutes (seed-004 rag_success_rate).",
            "percentunit",
            red_below(RAG_SUCCESS_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"min(job:rag_queries_success:ratio_rate15m{{{JOBS}}})", "answered"))
    )


def relevance_and_confidence_30_min() -> Panel:
    return (
        timeseries(
            "Relevance and confidence (30 min)",
            "Mean relevance and confidence scores per source over 30 minutes (seed-004 "
            "retrieval quality window).",
            "none")
        .min(0)
        .max(1)
        .decimals(2)
        .with_target(query(
            f"source:rag_relevance_score:mean30m{{{SOURCES}}}",
            "{{source}} relevance"))
        .with_target(query(
            f"source:rag_confidence_score:mean30m{{{SOURCES}}}",
            "{{source}} confidence"))
    )


def low_confidence_and_fallback_30_min() -> Panel:
    return (
        timeseries(
            "Low-confidence and fallback ratios (30 min)",
            "Share of answers with confidence 0.5 or less, and per source the share answered "
            "by the fallback path, over 30 minutes (seed-004 rag_low_confidence_queries_ratio, "
            "rag_fallback_queries_ratio).",
            "percentunit")
        .min(0)
        .max(1)
        .with_target(query(f"job:rag_confidence_low:ratio_rate30m{{{JOBS}}}", "low confidence"))
        .with_target(query(
            f"source:rag_queries_fallback:ratio_rate30m{{{SOURCES}}}",
            "{{source}} fallback"))
    )


# -- seed 004's query-analysis collector (records mapped by examples/seed-004-records.yml) -----

def analyses_per_second() -> Panel:
    return (
        timeseries(
            "Query analyses per second",
            "Incoming queries analysed per second, by the type the analysis gave them.",
            "reqps")
        .min(0)
        .with_target(query(
            f"sum by (query_type) (rate(query_analyses_total{{{JOBS}}}[$__rate_interval]))",
            "{{query_type}}"))
    )


def analysis_time_p95() -> Panel:
    return (
        timeseries(
            "Query analysis time p95",
            "95th percentile time to analyse a query (intent, complexity, routing), by type.",
            "s")
        .min(0)
        .with_target(query(
            histogram_p95("query_analysis_duration_seconds", JOBS, by="query_type"),
            "{{query_type}}"))
    )


def low_confidence_routings() -> Panel:
    return (
        timeseries(
            "Low-confidence routings",
            "Share of routing decisions with confidence 0.5 or less.",
            "percentunit")
        .min(0)
        .max(1)
        .with_target(query(
            f'sum(rate(query_routing_confidence_score_bucket{{{JOBS}, le="0.5"}}'
            "[$__rate_interval]))"
            f" / sum(rate(query_routing_confidence_score_count{{{JOBS}}}[$__rate_interval]))",
            "confidence <= 0.5"))
    )


def misroutes_per_analysis() -> Panel:
    return (
        timeseries(
            "Misroutes per analysis",
            "Queries re-routed after the first agent could not handle them, per query analysed.",
            "percentunit")
        .min(0)
        .with_target(query(
            f"sum(rate(query_misroutes_total{{{JOBS}}}[$__rate_interval]))"
            f" / sum(rate(query_analyses_total{{{JOBS}}}[$__rate_interval]))",
            "misroutes"))
    )


def agents_per_query() -> Panel:
    return (
        heatmap("Agents per query", "Queries per number of agents they were routed to.", "short")
        .with_target(heatmap_query(
            f"sum by (le) (increase(query_selected_agents_bucket{{{JOBS}}}[$__rate_interval]))"))
    )


def query_complexity() -> Panel:
    return (
        heatmap("Query complexity", "Queries per complexity-score bucket (0-1) over time.",
                "none")
        .with_target(heatmap_query(
            f"sum by (le) (increase(query_complexity_score_bucket{{{JOBS}}}[$__rate_interval]))"))
    )


def classification_accuracy() -> Panel:
    return (
        stat(
            "Classification accuracy",
            "Accuracy of the query classifier on its last evaluation.",
            "percentunit",
            red_below(0.8, orange=0.9))
        .min(0)
        .max(1)
        .with_target(query(f"min(query_classification_accuracy_ratio{{{JOBS}}})", "accuracy"))
    )
