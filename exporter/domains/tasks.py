"""Task updates (`events:tasks:updates`): completions and failures per agent, and durations.

Seed shape: {taskId, agent, status: "done"/"failed"/…, duration_seconds, timestamp}. The task id
is not a label (unbounded); the histogram's 1800 s edge is the seed's task SLA.
"""
from __future__ import annotations

from ..events import label, number
from ..thresholds import TASK_SLA_SECONDS
from .base import Context

TASK_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, TASK_SLA_SECONDS, 2700, 3600, 7200)


class TaskUpdates:
    name = "tasks"

    def __init__(self, ctx: Context) -> None:
        family = ctx.family
        self.limit = ctx.max_label_length
        self.total = family("agent_tasks_total", "counter",
                            "Task status updates received, by agent and reported status.",
                            ["agent", "status"])
        self.duration = family("agent_task_duration_seconds", "histogram",
                               f"Task durations reported with status updates (SLA edge: {TASK_SLA_SECONDS} s).",
                               ["agent", "status"], TASK_BUCKETS)

    def handle(self, event: dict, channel: str) -> None:
        agent = label(event, "agent", self.limit)
        status = label(event, "status", self.limit)
        duration = number(event, "duration_seconds", minimum=0)

        key = (agent, status)
        self.total.inc(key)
        if duration is not None:
            self.duration.observe(key, duration)
