"""Seed 004's coordination, query-analysis and user-experience collectors, as records on
`events:metrics` in the shape examples/seed-004-records.yml maps: a count per collection
interval for what is counted, one record per message, query or rating for what is measured, the
latest value for state. Without that mapping the exporter refuses the records whose names carry a
unit it does not accept (`coordination_message_latency_ms`, `user_first_response_time_ms`).
"""
from __future__ import annotations

import random
import socket
from collections import Counter

from .. import __version__
from ..publisher import Publisher
from .engine import lognormal

MESSAGE_TYPES = ("task_assignment", "status_update", "handoff_request", "consensus_vote")
RESOLUTIONS = ("priority", "first_claim", "consensus")
QUERY_TYPES = ("factual", "analytical", "code", "multi_step")
SENTIMENTS = ("positive", "neutral", "negative")
USER_REQUESTS_PER_SECOND = 0.5  # simulated seconds, as the agents and the training runs


def origin() -> dict[str, str]:
    """The enrichment every seed-004 record carries besides its collector."""
    return {"hostname": socket.gethostname(), "environment": "demo", "version": __version__}


class Seed004Collectors:
    """User requests (each analysed, routed and answered) and the agents' coordination traffic;
    `request` runs per request, `flush` once per collection interval."""

    def __init__(self, pub: Publisher, rng: random.Random) -> None:
        self.pub, self.rng = pub, rng
        self.analysed: Counter[str] = Counter()
        self.misroutes = 0
        self.feedback: Counter[str] = Counter()
        self.abandoned = 0
        self.sessions = 40
        self.origin = origin()

    def _record(self, collector: str, name: str, value: float, unit: str,
                **tags: str) -> None:
        self.pub.metric(name, value, unit, tags or None, collector=collector, **self.origin)

    def request(self) -> None:
        """One user request: analysed (type, complexity, routing), then answered or abandoned."""
        r = self.rng
        kind = r.choice(QUERY_TYPES)
        self.analysed[kind] += 1
        self._record("query", "query_analysis_time", round(lognormal(r, 0.06, 0.5), 4), "seconds",
                     query_type=kind)
        self._record("query", "query_complexity_score", round(r.betavariate(3, 4), 3), "score",
                     query_type=kind)
        self._record("query", "query_routing_confidence", round(r.betavariate(8, 2), 3), "score")
        self._record("query", "query_agents_selected", r.choice((1, 1, 1, 2, 2, 3, 5)), "count")
        self.misroutes += r.random() < 0.04
        if r.random() < 0.02:
            self.abandoned += 1
            return
        self._record("user", "user_first_response_time_ms", round(lognormal(r, 600, 0.5)), "ms")
        self._record("user", "user_response_time", round(lognormal(r, 4.0, 0.6), 3), "seconds")
        if r.random() < 0.2:
            stars = r.choices((1, 2, 3, 4, 5), weights=(2, 3, 10, 35, 50))[0]
            self._record("user", "user_satisfaction_score", stars, "stars")
            self.feedback[SENTIMENTS[0 if stars >= 4 else 1 if stars == 3 else 2]] += 1

    def flush(self) -> None:
        """The interval's counts (zeros too: a counter exists before its first increment) and
        the current state."""
        r = self.rng
        for kind in QUERY_TYPES:
            self._record("query", "queries_analyzed", self.analysed[kind], "count", query_type=kind)
        self._record("query", "query_misroutes", self.misroutes, "count")
        self._record("query", "query_classification_accuracy_percent",
                     round(r.uniform(88, 95), 1), "percent")
        for sentiment in SENTIMENTS:
            self._record("user", "user_feedback", self.feedback[sentiment], "count",
                         sentiment=sentiment)
        self._record("user", "user_sessions_abandoned", self.abandoned, "count")
        self.sessions = max(5, self.sessions + r.randint(-3, 3))
        self._record("user", "user_active_sessions", self.sessions, "count")
        self.analysed.clear()
        self.feedback.clear()
        self.misroutes = self.abandoned = 0
        self.coordination()

    def coordination(self) -> None:
        """One interval of the coordination protocol: messages (one latency each), handoffs,
        conflicts, consensus decisions and open sessions."""
        r = self.rng
        for kind in MESSAGE_TYPES:
            sent = r.randint(1, 4)
            self._record("coordination", "coordination_messages_sent", sent, "count",
                         message_type=kind)
            for _ in range(sent):
                self._record("coordination", "coordination_message_latency_ms",
                             round(lognormal(r, 12, 0.7), 2), "ms", message_type=kind)
        failed = int(r.random() < 0.1)
        self._record("coordination", "coordination_handoffs", r.randint(1, 4), "count",
                     result="success")
        self._record("coordination", "coordination_handoffs", failed, "count", result="failed")
        for resolution in RESOLUTIONS:
            self._record("coordination", "coordination_conflicts", int(r.random() < 0.3), "count",
                         resolution=resolution)
        for _ in range(r.randint(1, 2)):
            self._record("coordination", "coordination_consensus_time",
                         round(lognormal(r, 1.5, 0.6), 3), "seconds")
        self._record("coordination", "coordination_active_sessions", r.randint(3, 9), "count")
