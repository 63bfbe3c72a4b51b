"""Event sources: where message bytes come from. A source only moves bytes to the dispatcher,
so the domain code does not know (or care) whether events came over pub/sub or a stream.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..store import Store

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str

    @property
    def ready(self) -> bool: ...

    @property
    def restored(self) -> bool:
        """False until the source has restored the state a restart would otherwise reset."""

    def run(self, stop: threading.Event) -> None:
        """Read until `stop` is set, reconnecting by itself; never raises."""


def connect(url: str) -> redis.Redis:
    """A client that surfaces every lost connection (redis-py would retry silently), so the
    sources can count reconnects and know when to re-establish their subscriptions."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10,
                                socket_keepalive=True, retry=Retry(NoBackoff(), 0))


class RedisHealth:
    """`agent_exporter_redis_up` and `agent_exporter_redis_reconnects_total`, shared by sources.

    redis-py reconnects silently; sources report every lost connection here instead.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.up = store.family("agent_exporter_redis_up", "gauge",
                               "1 while the event sources are connected to Redis, else 0.", ttl=0)
        self.reconnects = store.family("agent_exporter_redis_reconnects_total", "counter",
                                       "Connections to Redis lost and re-established by the event "
                                       "sources.", ttl=0)
        self.up.persist = self.reconnects.persist = False  # live state, not checkpointed
        self._down: set[str] = set()
        self._connected: set[str] = set()
        with store.lock:
            self.up.set((), 0.0)
            self.reconnects.inc((), 0.0)

    def connected(self, source: str) -> None:
        with self.store.lock:
            if source in self._down and source in self._connected:
                self.reconnects.inc(())
            self._connected.add(source)
            self._down.discard(source)
            self.up.set((), 0.0 if self._down else 1.0)

    def lost(self, source: str, error: BaseException) -> None:
        with self.store.lock:
            first = source not in self._down
            self._down.add(source)
            self.up.set((), 0.0)
        if first:
            log.warning("%s: lost Redis (%s); retrying with backoff", source, error)


class Backoff:
    """Capped exponential backoff between reconnect attempts."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def wait(self, stop: threading.Event) -> None:
        stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.cap)

    def reset(self) -> None:
        self.delay = self.first
