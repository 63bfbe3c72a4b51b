"""An in-process ingest path (store + domains + dispatcher) for fast unit and property tests."""
from __future__ import annotations

from typing import Any

import orjson

from exporter.channels import DEFAULT_CHANNELS
from exporter.config import load
from exporter.dispatcher import Dispatcher
from exporter.domains import create_domains
from exporter.store import Store
from tests.support.procs import parse_samples


class Ingest:
    def __init__(self, **settings: Any) -> None:
        self.config = load(None, env={})
        self.config.values.update(settings)
        self.store = Store(self.config.series_budget, self.config.series_ttl_seconds or None)
        self.domains = create_domains(self.store, self.config, lambda name: False)
        routes = {channel: self.domains[d] for channel, d in self.config.channels.items()}
        self.dispatcher = Dispatcher(self.store, routes, self.config.max_event_bytes)

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
