"""Scrape-time collectors, after node_exporter: one module per collector, each registered under
a name with a default on/off, switched by config (`collectors:`) and `--[no-]collector.NAME`.

Each collector is a prometheus-client custom collector: `describe()` reads nothing, `collect()`
yields fresh metric families. `CollectorSet` runs them in parallel under a deadline and reports
`agent_exporter_collector_duration_seconds` and `agent_exporter_collector_success` for each, so a
slow or failing collector costs its own metrics, never the scrape.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from prometheus_client.core import GaugeMetricFamily, Metric

from ..throttle import Throttled
from . import gpu, host, redis_state  # noqa: F401  (each registers itself)
from .registry import COLLECTORS, Collector, CollectorSettings

__all__ = ["COLLECTORS", "CollectorSet", "CollectorSettings", "enabled"]

log = logging.getLogger(__name__)


class CollectorSet:
    """The enabled collectors, run in parallel on each scrape, each under `timeout` seconds."""

    def __init__(self, collectors: dict[str, Collector], timeout: float) -> None:
        self.collectors = collectors
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(collectors)),
                                        thread_name_prefix="collector")
        self._running: dict[str, Future] = {}
        self._complain = Throttled(log)

    def describe(self) -> Iterator[Metric]:
        yield from self.own()
        for collector in self.collectors.values():
            yield from collector.describe()

    def collect(self) -> Iterator[Metric]:
        started = {name: self._start(name) for name in self.collectors}
        deadline = time.monotonic() + self.timeout
        duration, success = self.own()
        for name, future in started.items():
            try:
                families, seconds = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self._complain(name, logging.WARNING, "collector %s failed: timed out after %ss "
                               "(logged once a minute)", name, self.timeout)
                duration.add_metric([name], self.timeout)
                success.add_metric([name], 0)
                continue
            except Exception as exc:
                # Not repr(): redis-py's errors print as "network:TimeoutError", without why.
                self._complain(name, logging.WARNING, "collector %s failed: %s: %s (logged once "
                               "a minute)", name, type(exc).__name__, exc)
                duration.add_metric([name], 0.0)
                success.add_metric([name], 0)
                continue
            duration.add_metric([name], seconds)
            success.add_metric([name], 1)
            yield from families
        yield duration
        yield success

    def _start(self, name: str) -> Future:
        running = self._running.get(name)
        if running is not None and not running.done():
            return running  # still stuck in an earlier scrape: wait on that, start nothing new
        future = self._pool.submit(self._run, self.collectors[name])
        self._running[name] = future
        return future

    @staticmethod
    def _run(collector: Collector) -> tuple[list[Metric], float]:
        start = time.perf_counter()
        families = list(collector.collect())
        return families, time.perf_counter() - start

    @staticmethod
    def own() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        """The families the set reports about its collectors."""
        return (GaugeMetricFamily("agent_exporter_collector_duration_seconds",
                                  "How long each collector took on this scrape.",
                                  labels=["collector"]),
                GaugeMetricFamily("agent_exporter_collector_success",
                                  "1 if the collector succeeded on this scrape, else 0.",
                                  labels=["collector"]))


def enabled(switches: Mapping[str, bool], settings: CollectorSettings) -> dict[str, Collector]:
    """Instantiate the collectors switched on (by name; else their default)."""
    return {name: reg.factory(settings) for name, reg in COLLECTORS.items()
            if switches.get(name, reg.default)}
