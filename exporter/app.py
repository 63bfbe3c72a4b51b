"""Wires the parts together: store, domains, dispatcher, sources, collectors and the HTTP server,
and runs them until SIGTERM/SIGINT.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    exposition,
    gc_collector,
    platform_collector,
    process_collector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics import exposition as om_exposition

from . import __version__, collectors
from .alert_bridge import AlertBridge
from .collectors import CollectorSettings
from .collectors.redis_state import RedisStateCollector
from .config import Config, ConfigError
from .dispatcher import Dispatcher
from .domains import Context, create_domains
from .domains.generic import GenericRecords
from .redis_client import redacted
from .server import Server
from .sources import RedisHealth, RedisSource
from .sources.pubsub import PubSubSource
from .sources.streams import StreamsSource
from .store import Store
from .validation import RESERVED_PREFIXES

log = logging.getLogger(__name__)

SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created", "_info")


class ExporterStats:
    """Read at scrape time: series held per family, and the pub/sub canary's age."""

    def __init__(self, store: Store, sources: list[RedisSource]) -> None:
        self.store = store
        self.canaries = [s for s in sources if isinstance(s, PubSubSource)]

    def describe(self) -> list:
        return []

    def collect(self):
        series = GaugeMetricFamily("agent_exporter_series",
                                   "Series currently held per event-fed metric family.",
                                   labels=["metric"])
        for name, count in self.store.series_count().items():
            series.add_metric([name], count)
        yield series
        for source in self.canaries:
            yield GaugeMetricFamily("agent_exporter_canary_age_seconds",
                                    "Seconds since the exporter's own pub/sub canary last came "
                                    "back; grows when the subscription is dead.",
                                    value=source.canary_age())


class Exporter:
    def __init__(self, config: Config, reload: Callable[[], Config] | None = None) -> None:
        """`reload` re-reads the configuration the way start-up did (for SIGHUP)."""
        self.config = config
        self._reload = reload
        self._threads: list[threading.Thread] = []
        self.stop = threading.Event()
        self.store = Store(config.series_budget, config.series_ttl_seconds,
                           config.counter_ttl_seconds)
        build = self.store.family("agent_exporter_build_info", "gauge",
                                  "Always 1; the version label says which exporter runs.",
                                  ["version"], ttl=0)
        self.reload_ok = self.store.family(
            "agent_exporter_config_last_reload_successful", "gauge",
            "1 if the last configuration reload (SIGHUP) succeeded, 0 if the running "
            "configuration was kept because the file was bad.", ttl=0)
        self.reload_time = self.store.family(
            "agent_exporter_config_last_reload_success_timestamp_seconds", "gauge",
            "When the configuration was last loaded successfully (start-up or SIGHUP).", ttl=0)
        build.persist = self.reload_ok.persist = self.reload_time.persist = False
        with self.store.lock:
            build.set((__version__,), 1.0)
        self._reloaded(True)
        self.health = RedisHealth(self.store, config.redis_url)

        settings = CollectorSettings(config.redis_url, config.collector_timeout_seconds,
                                     config.max_label_length, config.key_checks)
        self.collector_set = collectors.CollectorSet(
            collectors.enabled(config.collectors, settings), config.collector_timeout_seconds)
        self.registry = CollectorRegistry(auto_describe=False)
        for standard in (process_collector.ProcessCollector, platform_collector.PlatformCollector,
                         gc_collector.GCCollector):
            standard(registry=self.registry)
        self.registry.register(self.collector_set)

        taken: set[str] = set()
        ctx = Context(self.store, config.max_label_length, config.series_budgets,
                      config.series_ttls)
        self.domains = create_domains(
            ctx, config.metrics, config.max_generic_metrics,
            lambda name: name in taken or name.startswith(RESERVED_PREFIXES))
        taken.update(self._sample_names())
        routes = {channel: self.domains[domain] for channel, domain in config.channels.items()}
        self.dispatcher = Dispatcher(self.store, routes, config.max_event_bytes)
        self.sources: list[RedisSource] = []
        if config.source in ("pubsub", "both"):
            self.sources.append(PubSubSource(config.redis_url, list(routes), self.dispatcher,
                                             self.health))
        if config.source in ("streams", "both"):
            keys = config.streams.keys or config.channels
            for key, domain in keys.items():
                self.dispatcher.routes.setdefault(key, self.domains[domain])
            self.sources.append(StreamsSource(config.redis_url, {k: k for k in keys},
                                              self.dispatcher, self.health, self.store,
                                              config.streams, config.consumer))
        self.registry.register(ExporterStats(self.store, self.sources))
        self.registry.register(self.health)
        self.bridge = AlertBridge(config.alert_bridge, config.redis_url, self.store)
        self.server: Server | None = None

    def _sample_names(self) -> set[str]:
        """Every name a built-in family can expose, so generic records cannot shadow one."""
        names = set(self.store.families) | {m.name for m in self.collector_set.describe()}
        bases = {n[:-6] if n.endswith("_total") else n for n in names}
        return {base + suffix for base in bases for suffix in SUFFIXES}

    def ready(self) -> bool:
        """Every source reads (/readyz): the condition of `agent_exporter_source_up`."""
        now = time.monotonic()
        return bool(self.sources) and all(source.reading(now) for source in self.sources)

    def render(self, openmetrics: bool) -> bytes:
        self.store.expire()
        restored = all(source.restored for source in self.sources)
        parts = list(self.store.render(openmetrics, persisted=restored))
        encoder = om_exposition if openmetrics else exposition  # OpenMetrics ends with "# EOF"
        parts.append(encoder.generate_latest(self.registry).decode())
        return "".join(parts).encode()

    def start(self) -> None:
        host, _, port = self.config.listen.rpartition(":")
        self.server = Server((host.strip("[]") or "0.0.0.0", int(port)), self.render, self.ready)
        self.server.mount("/alertmanager", self.bridge.handle, self.bridge.max_body_bytes)
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()
        threading.Thread(target=self.health.run, args=(self.stop,), name="redis-health",
                         daemon=True).start()
        for source in self.sources:
            thread = threading.Thread(target=source.run, args=(self.stop,), name=source.name,
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("agent-exporter %s listening on %s, reading %s from %s", __version__,
                 self.config.listen, self.config.source, redacted(self.config.redis_url))

    def shutdown(self, drain_seconds: float = 8.0) -> None:
        """Stop reading; let each source apply and checkpoint what it read; stop serving."""
        self.stop.set()
        deadline = time.monotonic() + drain_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def reload(self) -> None:
        """SIGHUP: re-read the file; apply new generic mappings and key checks, or keep the old
        configuration when the new one is bad."""
        if self._reload is None:
            return
        try:
            config = self._reload()
        except Exception as exc:
            reason = exc if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            log.error("reload failed, keeping the running configuration: %s", reason)
            self._reloaded(False)
            return
        generic = self.domains["metrics"]
        assert isinstance(generic, GenericRecords)
        generic.reload(config.metrics)
        key_checks = self.collector_set.collectors.get("redis_state")
        if isinstance(key_checks, RedisStateCollector):
            key_checks.reload(config.key_checks)
        self._reloaded(True)
        log.info("reloaded %s", config.path or "configuration")

    def _reloaded(self, ok: bool) -> None:
        with self.store.lock:
            self.reload_ok.set((), 1.0 if ok else 0.0)
            if ok:
                self.reload_time.set((), time.time())

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; SIGHUP reloads. Returns the exit status."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload())
        self.start()
        self.stop.wait()
        log.info("shutting down")
        self.shutdown()
        return 0
