"""RAG queries (`events:rag:queries`): one event per query, so the exporter counts and
bucketises instead of averaging (the seed pre-averaged per 15 minutes).

outcome: failure if not success; fallback if it succeeded through the fallback path; else
success. The three add up to all queries.
"""
from __future__ import annotations

from ..events import flag, label, number
from .base import Context

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class RagQueries:
    name = "rag"

    def __init__(self, ctx: Context) -> None:
        family = ctx.family
        self.limit = ctx.max_label_length
        self.queries = family("rag_queries_total", "counter",
                              "RAG queries by outcome: success, fallback (answered by the fallback "
                              "path) or failure.", ["source", "outcome"])
        self.duration = family("rag_query_duration_seconds", "histogram",
                               "RAG query latency.", ["source"], LATENCY_BUCKETS)
        self.cache = family("rag_cache_requests_total", "counter",
                            "RAG cache lookups by result (hit or miss).", ["source", "result"])
        self.relevance = family("rag_relevance_score", "histogram",
                                "Relevance score (0-1) of each answered query.", ["source"],
                                SCORE_BUCKETS)
        self.confidence = family("rag_confidence_score", "histogram",
                                 "Confidence score (0-1) of each answered query; 0.5 is the "
                                 "low-confidence edge.", ["source"], SCORE_BUCKETS)

    def handle(self, event: dict, channel: str) -> None:
        source = label(event, "source", self.limit, default="default")
        duration = number(event, "duration_seconds", required=True, minimum=0)
        success = flag(event, "success", required=True)
        cache_hit = flag(event, "cache_hit")
        fallback = flag(event, "fallback")
        relevance = number(event, "relevance_score", minimum=0, maximum=1)
        confidence = number(event, "confidence_score", minimum=0, maximum=1)

        key = (source,)
        outcome = "failure" if not success else "fallback" if fallback else "success"
        self.queries.inc((source, outcome))
        self.duration.observe(key, duration)
        if cache_hit is not None:
            self.cache.inc((source, "hit" if cache_hit else "miss"))
        if relevance is not None:
            self.relevance.observe(key, relevance)
        if confidence is not None:
            self.confidence.observe(key, confidence)
