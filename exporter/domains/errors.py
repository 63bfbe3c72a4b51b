"""Errors (`events:errors:<kind>`): counted by kind (the channel's last segment) and component.

Seed shape: {errorId, component, error, timestamp}. The message and id are not labels.
"""
from __future__ import annotations

from ..events import check_label, label
from .base import Context


class Errors:
    name = "errors"

    def __init__(self, ctx: Context) -> None:
        family = ctx.family
        self.limit = ctx.max_label_length
        self.total = family("agent_errors_total", "counter",
                            "Error events by kind (events:errors:<kind>) and component.",
                            ["kind", "component"])

    def handle(self, event: dict, channel: str) -> None:
        kind = label(event, "kind", self.limit, default=channel.rsplit(":", 1)[-1])
        check_label("kind", kind, self.limit)
        component = label(event, "component", self.limit, default="unknown")
        self.total.inc((kind, component))
