"""Workflow steps (`events:workflows:steps`): step durations by workflow and step.

Seed shape: {workflowId, stepId, duration_seconds}; the 600 s bucket edge is the seed's
slow-step threshold.
"""
from __future__ import annotations

from ..events import label, number
from ..thresholds import SLOW_STEP_SECONDS
from .base import Context

STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, SLOW_STEP_SECONDS, 900, 1800, 3600)


class WorkflowSteps:
    name = "workflows"

    def __init__(self, ctx: Context) -> None:
        family = ctx.family
        self.limit = ctx.max_label_length
        self.duration = family("workflow_step_duration_seconds", "histogram",
                               f"Workflow step durations (slow-step edge: {SLOW_STEP_SECONDS} s).",
                               ["workflow", "step"], STEP_BUCKETS)

    def handle(self, event: dict, channel: str) -> None:
        workflow = label(event, "workflowId", self.limit)
        step = label(event, "stepId", self.limit)
        duration = number(event, "duration_seconds", required=True, minimum=0)
        self.duration.observe((workflow, step), duration)
