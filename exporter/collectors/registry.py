"""The collector registry, after node_exporter's: each collector module registers itself under a
name with a default on/off, and is built from the settings collectors share.

Each collector is a prometheus-client custom collector: `describe()` reads nothing, `collect()`
yields fresh metric families on every scrape.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..names import Names
from .key_checks import KeyCheck


class Collector(Protocol):
    def describe(self) -> Iterable[Metric]: ...

    def collect(self) -> Iterable[Metric]: ...


@dataclass(frozen=True)
class CollectorSettings:
    """What collectors are handed: where Redis is, the key checks, the limits, and the names the
    exposition holds (shared with the store: exporter/names.py)."""

    redis_url: str = "redis://localhost:6379/0"
    timeout: float = 3.0  # per-collector deadline on each scrape
    max_label_length: int = 128
    key_checks: Sequence[KeyCheck] = field(default_factory=tuple)
    names: Names = field(default_factory=Names)


@dataclass(frozen=True)
class Registration:
    factory: Callable[[CollectorSettings], Collector]
    default: bool
    help: str


COLLECTORS: dict[str, Registration] = {}


def register(name: str, default: bool, help: str) -> Callable:
    """Class decorator: make a collector known under `name`."""

    def wrap(factory: Callable[[CollectorSettings], Collector]) -> Callable[[CollectorSettings], Collector]:
        COLLECTORS[name] = Registration(factory, default, help)
        return factory

    return wrap


Family = TypeVar("Family", bound=Metric)
Built = GaugeMetricFamily | CounterMetricFamily  # what gauge() and counter() make


def by_exposed_name(families: Iterable[Family]) -> dict[str, Family]:
    """Families keyed by the name they expose (prometheus-client drops a counter's `_total`)."""
    return {m.name + ("_total" if m.type == "counter" else ""): m for m in families}


def gauge(name: str, help_text: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=list(labels))


def counter(name: str, help_text: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, labels=list(labels))
