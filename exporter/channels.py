"""The event contract's channel names and the event types (domains) they carry.

Shared by the exporter (what to subscribe to) and the publisher (where to send), so the two
cannot drift apart.
"""
from __future__ import annotations

AGENTS = "events:agents:status"
TASKS = "events:tasks:updates"
TRAINING = "events:training:progress"
RAG = "events:rag:queries"
WORKFLOWS = "events:workflows:steps"
ERRORS = "events:errors:"  # + kind; subscribed by the pattern events:errors:*
METRICS = "events:metrics"
ALERTS = "events:alerts:"  # + category; written by the alert bridge

DOMAINS = ("agents", "tasks", "training", "rag", "workflows", "errors", "metrics")

DEFAULT_CHANNELS: dict[str, str] = {
    AGENTS: "agents",
    TASKS: "tasks",
    TRAINING: "training",
    RAG: "rag",
    WORKFLOWS: "workflows",
    ERRORS + "*": "errors",
    METRICS: "metrics",
}


def is_pattern(channel: str) -> bool:
    """A channel name with glob characters is subscribed with PSUBSCRIBE."""
    return any(c in channel for c in "*?[")
