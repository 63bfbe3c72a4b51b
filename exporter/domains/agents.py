"""Agent status events (`events:agents:status`): the swarm's current state, one series per agent.

Seed shape: {agentType, status: "busy"/"idle"/…, taskCount}, optionally agentId, queueDepth,
load, available. The agent label is agentId, or else agentType (the seeds name agents by type).
"""
from __future__ import annotations

from ..events import flag, label, number
from .base import Context

UNAVAILABLE = frozenset({"offline", "unavailable", "stopped", "error"})


class AgentStatus:
    name = "agents"

    def __init__(self, ctx: Context) -> None:
        family = ctx.family
        self.limit = ctx.max_label_length
        self.clock = ctx.clock
        self.busy = family("agent_busy", "gauge", "1 while the agent reports status busy, else 0.",
                           ["agent"])
        self.tasks = family("agent_current_tasks", "gauge",
                            "Tasks the agent holds now (taskCount of its last status event).",
                            ["agent"])
        self.queue = family("agent_queue_depth", "gauge",
                            "Tasks waiting in the agent's queue (queueDepth of its last status event).",
                            ["agent"])
        self.load = family("agent_load_ratio", "gauge",
                           "The agent's self-reported load, 1 = fully loaded (load of its last status event).",
                           ["agent"])
        self.available = family("agent_available", "gauge",
                                "1 if the agent can take work (available, or its status is not "
                                "offline/unavailable/stopped/error), else 0.", ["agent"])
        self.seen = family("agent_last_seen_timestamp_seconds", "gauge",
                           "When the exporter last received a status event from the agent.", ["agent"])

    def handle(self, event: dict, channel: str) -> None:
        agent = (label(event, "agentId", self.limit, required=False)
                 or label(event, "agentType", self.limit))
        status = label(event, "status", self.limit)
        tasks = number(event, "taskCount", minimum=0)
        queue = number(event, "queueDepth", minimum=0)
        load = number(event, "load", minimum=0)
        available = flag(event, "available")

        key = (agent,)
        self.busy.set(key, 1.0 if status == "busy" else 0.0)
        if tasks is not None:
            self.tasks.set(key, tasks)
        if queue is not None:
            self.queue.set(key, queue)
        if load is not None:
            self.load.set(key, load)
        if available is None:
            available = status not in UNAVAILABLE
        self.available.set(key, 1.0 if available else 0.0)
        self.seen.set(key, self.clock.now)
