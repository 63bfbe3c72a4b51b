"""What every event domain is handed and what it must provide.

A domain is a class with a `name` (its event type, the `type` label) and `handle(event, channel)`,
which reads and checks every field first and raises `events.Invalid` before touching any metric.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..names import BUILT_IN
from ..store import Clock, Family, Store


class Domain(Protocol):
    name: str

    def handle(self, event: dict, channel: str) -> None: ...


@dataclass(frozen=True)
class Context:
    """The store, the label-length limit, and the per-metric budget and TTL overrides."""

    store: Store
    max_label_length: int = 128
    budgets: Mapping[str, float] = field(default_factory=dict)
    ttls: Mapping[str, float] = field(default_factory=dict)

    @property
    def clock(self) -> Clock:
        return self.store.clock

    def family(self, name: str, kind: str, help: str, labelnames: Sequence[str] = (),
               buckets: Sequence[float] | None = None, source: str = BUILT_IN) -> Family:
        """Register a family with its configured budget and TTL overrides."""
        budget = self.budgets.get(name)
        return self.store.family(name, kind, help, labelnames, buckets,
                                 budget=None if budget is None else int(budget),
                                 ttl=self.ttls.get(name), source=source)
