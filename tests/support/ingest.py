"""An in-process ingest path (store + domains + dispatcher) for fast unit and property tests."""
from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from exporter.config import load
from exporter.contract import DEFAULT_CHANNELS
from exporter.dispatcher import Dispatcher
from exporter.domains import Context, create_domains
from exporter.store import Store
from tests.support.procs import parse_samples


class Ingest:
    def __init__(self, **settings: Any) -> None:
        self.config = dataclasses.replace(load(None, env={}), **settings)
        config = self.config
        self.store = Store(config.series_budget, config.series_ttl_seconds,
                           config.counter_ttl_seconds, config.max_labels)
        ctx = Context(self.store, config.max_label_length, config.series_budgets,
                      config.series_ttls)
        self.domains = create_domains(ctx, config.metrics, config.max_generic_metrics,
                                      config.origin_labels, config.llm)
        routes = {channel: self.domains[d] for channel, d in config.channels.items()}
        self.dispatcher = Dispatcher(self.store, routes, config.max_event_bytes)

    def send(self, channel: str, event: Any, source: str | None = None) -> None:
        """Route like pub/sub does: error channels arrive through their pattern."""
        route = "events:errors:*" if channel.startswith("events:errors:") else channel
        assert route in DEFAULT_CHANNELS
        payload = event if isinstance(event, bytes) else orjson.dumps(event)
        self.dispatcher.dispatch(route, source or channel, payload, True)

    def text(self, openmetrics: bool = False) -> str:
        return "".join(self.store.render(openmetrics))

    def samples(self) -> dict:
        return parse_samples(self.text())

    def series(self) -> dict[str, int]:
        """Series per family, leaving out the exporter's own bookkeeping."""
        return {name: count for name, count in self.store.series_count().items()
                if not name.startswith("agent_exporter_") and count}
