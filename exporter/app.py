"""Wires the parts together: store, domains, dispatcher, sources, collectors and the HTTP server,
and runs them until SIGTERM/SIGINT.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    exposition,
    gc_collector,
    platform_collector,
    process_collector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as om_exposition

from . import __version__, collectors
from .alert_bridge import AlertBridge, unguarded_reason
from .collectors import CollectorSettings
from .collectors.redis_state import RedisStateCollector
from .config import Config, ConfigError
from .dispatcher import Dispatcher
from .domains import Context, create_domains
from .domains.generic import GenericRecords
from .domains.llm import LlmCalls
from .http_connections import HttpStats
from .insights import CriticalErrorLog, RecordingCriticalErrors
from .redact import redacted_url
from .redis_client import client as redis_client
from .server import PostRoute, Server
from .sources import RedisHealth, RedisSource
from .sources.peers import warn_if_shared
from .sources.pubsub import PubSubSource
from .sources.streams import StreamsSource
from .store import Store
from .web_config import WebConfigFile

log = logging.getLogger(__name__)

# How long a thread that wants the GIL waits before the running one must hand it over (Python's
# default: 5 ms). A scrape hands the GIL back a dozen times (lock, I/O, /proc reads) while an
# ingest thread applies a burst; at 5 ms a turn that alone stalled it 60-80 ms.
SWITCH_INTERVAL_SECONDS = 0.001


class ExporterStats:
    """Read at scrape time: series held per family, and the pub/sub canary's age."""

    def __init__(self, store: Store, sources: list[RedisSource]) -> None:
        self.store = store
        self.canaries = [s for s in sources if isinstance(s, PubSubSource)]

    def describe(self) -> list[Metric]:
        return [self._series(), *(self._canary(0.0) for _ in self.canaries[:1])]

    def collect(self):
        series = self._series()
        for name, count in self.store.series_count().items():
            series.add_metric([name], count)
        yield series
        for source in self.canaries:
            yield self._canary(source.canary_age())

    @staticmethod
    def _series() -> GaugeMetricFamily:
        return GaugeMetricFamily("agent_exporter_series",
                                 "Series currently held per event-fed metric family.",
                                 labels=["metric"])

    @staticmethod
    def _canary(age: float) -> GaugeMetricFamily:
        return GaugeMetricFamily("agent_exporter_canary_age_seconds",
                                 "Seconds since the exporter's own pub/sub canary last came "
                                 "back; grows when the subscription is dead.", value=age)


class Exporter:
    def __init__(self, config: Config, reload: Callable[[], Config] | None = None) -> None:
        """`reload` re-reads the configuration the way start-up did (for SIGHUP)."""
        self.config = config
        self._reload = reload
        self._threads: list[threading.Thread] = []
        self.stop = threading.Event()
        self.store = Store(config.series_budget, config.series_ttl_seconds,
                           config.counter_ttl_seconds, config.max_labels)
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

        ctx = Context(self.store, config.max_label_length, config.series_budgets,
                      config.series_ttls)
        self.domains = create_domains(ctx, config.metrics, config.max_generic_metrics,
                                      config.origin_labels, config.llm)
        self.critical_errors: CriticalErrorLog | None = None
        if config.insights.enabled:
            self.critical_errors = CriticalErrorLog(
                config.insights, redis_client(config.redis_url, timeout=2.0), self.store)
            self.domains["errors"] = RecordingCriticalErrors(self.domains["errors"],
                                                             self.critical_errors)
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
        self.http_stats = HttpStats()
        self.bridge = AlertBridge(config.alert_bridge, config.redis_url, self.store,
                                  config.insights)

        # Every family outside the store holds its names too (exporter/names.py), in order of
        # precedence: the exporter's own (its store families above, collectors, prometheus-
        # client's), then the key checks; records take what is left as they arrive.
        settings = CollectorSettings(config.redis_url, config.collector_timeout_seconds,
                                     config.max_label_length, config.key_checks, self.store.names)
        self.collector_set = collectors.CollectorSet(
            collectors.enabled(config.collectors, settings), config.collector_timeout_seconds)
        self.registry = CollectorRegistry(auto_describe=False)
        for standard in (process_collector.ProcessCollector, platform_collector.PlatformCollector,
                         gc_collector.GCCollector):
            self._hold("prometheus-client", standard(registry=self.registry).collect())
        self.registry.register(self.collector_set)
        stats = ExporterStats(self.store, self.sources)
        self.registry.register(stats)
        self.registry.register(self.http_stats)
        self.registry.register(self.health)
        self._hold("exporter", [*self.collector_set.own(), *stats.describe(),
                                *self.http_stats.collect(), *self.health.describe()])
        for name, collector in self.collector_set.collectors.items():
            if not isinstance(collector, RedisStateCollector):
                self._hold(f"collector {name}", collector.describe())
        self.key_checks = self.collector_set.collectors.get("redis_state")
        if isinstance(self.key_checks, RedisStateCollector):
            self.key_checks.use(config.key_checks)
        self.server: Server | None = None

    def _hold(self, source: str, families: Iterable[Metric]) -> None:
        """Claim the names of families made outside the store; they are the exporter's own, so
        a clash is a bug, not bad input."""
        for family in families:
            problem = self.store.names.claim(family.name, family.type, source)
            if problem:
                raise ValueError(problem)

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
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        web = WebConfigFile(self.config.web_config_file) if self.config.web_config_file else None
        self.server = Server(self.config.listen, self.render, self.ready, self.http_stats, web)
        self._mount_bridge()
        self.server.start()
        threading.Thread(target=self.health.run, args=(self.stop,), name="redis-health",
                         daemon=True).start()
        if self.critical_errors:
            threading.Thread(target=self.critical_errors.run, args=(self.stop,),
                             name="critical-errors", daemon=True).start()
        for source in self.sources:
            if isinstance(source, PubSubSource):  # HA pair or a mistake: say which is which
                threading.Thread(target=warn_if_shared, args=(source, self.config.redis_url,
                                 self.stop), name="pubsub-peers", daemon=True).start()
            thread = threading.Thread(target=source.run, args=(self.stop,), name=source.name,
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("agent-exporter %s listening on %s (%s), reading %s from %s", __version__,
                 self.config.listen, "https" if web and web.current().tls else "http",
                 self.config.source, redacted_url(self.config.redis_url))

    def _mount_bridge(self) -> None:
        """POST /alertmanager; off (404 with the reason, logged now) where nothing would
        authenticate it on a non-loopback listener."""
        assert self.server is not None
        bridge = self.bridge
        reason = unguarded_reason(self.config.listen)
        self.server.mount("/alertmanager", PostRoute(
            handle=bridge.handle, max_body_bytes=bridge.max_body_bytes, token=bridge.token,
            unguarded=reason,
            disabled=None if bridge.enabled else "alert bridge disabled (alert_bridge.enabled: "
                                                 "false)"))
        web = self.server.web()
        try:
            has_token = bridge.token() is not None
        except (OSError, ValueError):
            has_token = True  # configured; unreadable now is answered per request
        if (bridge.enabled and self.server.exposed and not has_token and not web.users
                and not web.client_cert_required):
            log.warning("%s", reason)

    def shutdown(self, drain_seconds: float = 8.0) -> None:
        """Stop reading; let each source apply and checkpoint what it read; stop serving."""
        self.stop.set()
        deadline = time.monotonic() + drain_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.server is not None:
            self.server.close()

    def reload(self) -> None:
        """SIGHUP: re-read the file; apply new generic mappings, LLM prices and budgets and key
        checks, or keep the old configuration when the new one is bad."""
        if self._reload is None:
            return
        try:
            config = self._reload()
            if isinstance(self.key_checks, RedisStateCollector):  # first: it may refuse
                self.key_checks.use(config.key_checks)
        except Exception as exc:
            reason = exc if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            log.error("reload failed, keeping the running configuration: %s", reason)
            self._reloaded(False)
            return
        generic = self.domains["metrics"]
        assert isinstance(generic, GenericRecords)
        generic.reload(config.metrics)
        llm = self.domains["llm"]
        assert isinstance(llm, LlmCalls)
        llm.reload(config.llm)
        self._reloaded(True)
        log.info("reloaded %s", config.path or "configuration")

    def _reloaded(self, ok: bool) -> None:
        with self.store.lock:
            self.reload_ok.set((), 1.0 if ok else 0.0)
            if ok:
                self.reload_time.set((), time.time())

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; SIGHUP reloads. Returns the exit status.

        The signals are taken with sigwait, blocked in every thread: a handler runs only in the
        main thread, and a signal the kernel hands to another thread left the main thread
        asleep in its wait, so a SIGHUP could wait for the next signal to be seen."""
        signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # the threads started below inherit it
        try:
            self.start()
        except OSError as exc:
            log.error("cannot listen on %s: %s", self.config.listen, exc.strerror or exc)
            self.shutdown()
            return 1
        while signal.sigwait(signals) == signal.SIGHUP:
            self.reload()
        self.stop.set()
        log.info("shutting down")
        self.shutdown()
        return 0
