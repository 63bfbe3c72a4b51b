"""Event domains: one module per event type, each owning its schema and the metrics it feeds.

A domain is a class with a `name` (the event type, used as the `type` label) and
`handle(event, channel)`, which raises `events.Invalid` before touching any metric.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..config import Config
from ..store import Family, Store


class Domain(Protocol):
    name: str

    def handle(self, event: dict, channel: str) -> None: ...


def family_factory(store: Store, config: Config) -> Callable[..., Family]:
    """Registers families with the per-metric budget and TTL overrides from the config."""

    def make(name: str, kind: str, help: str, labelnames: Sequence[str] = (),
             buckets: Sequence[float] | None = None) -> Family:
        return store.family(name, kind, help, labelnames, buckets,
                            budget=config.series_budgets.get(name),
                            ttl=config.series_ttls.get(name))

    return make


def create_domains(store: Store, config: Config, reserved: Callable[[str], bool]) -> dict[str, Domain]:
    """Every event domain by its name, with its families registered in `store`."""
    from . import agents, errors, generic, rag, tasks, training, workflows

    made: list[Domain] = [
        agents.AgentStatus(store, config),
        tasks.TaskUpdates(store, config),
        training.TrainingProgress(store, config),
        rag.RagQueries(store, config),
        workflows.WorkflowSteps(store, config),
        errors.Errors(store, config),
        generic.GenericRecords(store, config, reserved),
    ]
    return {domain.name: domain for domain in made}
