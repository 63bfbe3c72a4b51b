"""Event sources: where message bytes come from. A source only moves bytes to the dispatcher,
so the domain code does not know (or care) whether events came over pub/sub or a stream.
"""
from __future__ import annotations

import logging
import threading
import time

import redis

from ..redis_client import client as redis_client
from ..store import Store

log = logging.getLogger(__name__)

GATHER_BELOW = 10  # messages: a smaller read is followed by a pause while the rate is low
GATHER_RATE = 1000.0  # messages/s: "low"
GATHER_SECONDS = 0.05


class Gather:
    """Pauses a reader after small reads while its rate is low. At a low rate every message
    would cost a wake-up of its own, and wake-ups are what a receiver's CPU goes to (180-200 µs
    each on a small VM, whatever the system calls); pausing 50 ms lets the next read take
    several. A scrape every 15 s cannot see 50 ms, and at high rates the reader never pauses:
    the rate, not the size of one read, decides, since a blocked XREADGROUP returns the first
    entry of a burst alone."""

    def __init__(self) -> None:
        self.count = 0
        self.since = time.monotonic()
        self.rate = 0.0  # messages/s over the last full second

    def after(self, read: int, stop: threading.Event) -> None:
        self.count += read
        now = time.monotonic()
        if now - self.since >= 1.0:
            self.rate, self.count, self.since = self.count / (now - self.since), 0, now
        if read < GATHER_BELOW and self.rate < GATHER_RATE:
            stop.wait(GATHER_SECONDS)


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


class RedisSource:
    """The connection life cycle both sources share: connect, run a session until stopped or the
    connection is lost, report it, back off, reconnect."""

    name: str
    restored = True  # False while a source restores state a restart would otherwise reset
    socket_timeout = 10.0  # seconds a read on the session's connection may wait

    def __init__(self, redis_url: str, health: RedisHealth) -> None:
        self.redis_url = redis_url
        self.health = health
        self._backoff = Backoff()
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def live(self) -> None:
        """Called by a session once it receives events."""
        self._backoff.reset()
        self.health.connected(self.name)
        self._ready = True

    def session(self, client: redis.Redis, stop: threading.Event) -> None:
        """Read until `stop` is set; raise redis/OS errors when the connection fails."""
        raise NotImplementedError

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            client = redis_client(self.redis_url, timeout=self.socket_timeout)
            try:
                self.session(client, stop)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self._ready = False
                self.health.lost(self.name, exc)
                self._backoff.wait(stop)
            finally:
                self._ready = False
                client.close()
