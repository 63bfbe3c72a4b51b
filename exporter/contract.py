"""The event contract: channel names, the event types they carry, and the choices that the
command line, the configuration and the publisher share, so that none of them can drift.

Adding an event type: a line in EVENT_TYPES, a domain module (exporter/domains/) and a Publisher
method; the channel, the `publish` subcommand and the config's known types follow from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .validation import ConfigError, expect

AGENTS = "events:agents:status"
TASKS = "events:tasks:updates"
TRAINING = "events:training:progress"
RAG = "events:rag:queries"
WORKFLOWS = "events:workflows:steps"
ERRORS = "events:errors:"  # + kind; subscribed by the pattern events:errors:*
METRICS = "events:metrics"
LLM = "events:llm:calls"
ALERTS = "events:alerts:"  # + category; written by the alert bridge

# Fields the publisher adds over pub/sub, from which the exporter counts lost events.
PUBLISHER_FIELDS = ("_pub", "_seq")

TRANSPORTS = ("pubsub", "streams", "both")  # publisher transports and exporter sources
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class EventType:
    name: str  # the domain's name: `type` label, config value in `channels:`
    channel: str  # default channel, or pattern for a family of channels
    command: str  # `agent-exporter publish COMMAND key=value ...`
    method: str  # the Publisher method that sends it


EVENT_TYPES = (
    EventType("agents", AGENTS, "agent-status", "agent_status"),
    EventType("tasks", TASKS, "task", "task_update"),
    EventType("training", TRAINING, "training", "training_progress"),
    EventType("rag", RAG, "rag", "rag_query"),
    EventType("workflows", WORKFLOWS, "workflow", "workflow_step"),
    EventType("errors", ERRORS + "*", "error", "error"),
    EventType("metrics", METRICS, "metric", "metric"),
    EventType("llm", LLM, "llm", "llm_call"),
)
DOMAINS = tuple(event.name for event in EVENT_TYPES)
DEFAULT_CHANNELS: dict[str, str] = {event.channel: event.name for event in EVENT_TYPES}


def is_pattern(channel: str) -> bool:
    """A channel name with glob characters is subscribed with PSUBSCRIBE."""
    return any(c in channel for c in "*?[")


def parse_channels(value: Any, key: str, origin: str) -> dict[str, str]:
    """A config mapping of channel (or pattern, or stream key) → event type."""
    expect(value, dict, key, origin)
    for channel, domain in value.items():
        expect(channel, str, key, origin)
        if domain not in DOMAINS:
            raise ConfigError(f"{key}.{channel}",
                              f"unknown event type {domain!r} (known: {', '.join(DOMAINS)})", origin)
    return dict(value)
