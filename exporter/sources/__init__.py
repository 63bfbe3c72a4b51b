"""Event sources: where message bytes come from. A source only moves bytes to the dispatcher,
so the domain code does not know (or care) whether events came over pub/sub or a stream.
"""
from __future__ import annotations

import threading
import time

import redis

from ..redis_client import client as redis_client
from .health import RedisHealth

STALL_SECONDS = 10.0  # past a source's longest wait for a read: a reader this late is stuck

GATHER_BELOW = 10  # messages: a smaller read is followed by a pause while the rate is low
GATHER_RATE = 1000.0  # messages/s: "low"
GATHER_SECONDS = 0.05


def name_text(name: bytes) -> str:
    """A channel name or stream key as label text. Redis names are bytes and need not be UTF-8:
    bytes that are not print as \\xNN escapes, so distinct names stay distinct."""
    return name.decode("utf-8", "backslashreplace")


class Gather:
    """Pauses a reader after small reads while its rate is low. At a low rate every message
    would cost a wake-up of its own, and wake-ups are what a receiver's CPU goes to (180-200 µs
    each on a small VM, whatever the system calls); pausing 50 ms lets the next read take
    several. A scrape every 15 s cannot see 50 ms, and at high rates the reader never pauses:
    the rate, not the size of one read, decides, since a blocked XREADGROUP returns the first
    entry of a burst alone."""

    def __init__(self) -> None:
        self.count = 0
        self.since = self.last = time.monotonic()
        self.rate = 0.0  # messages/s over the last full second

    def after(self, read: int, stop: threading.Event) -> None:
        """After every read (an empty one included); also marks when the reader last read,
        which supervision reads at scrape time."""
        self.count += read
        self.last = now = time.monotonic()
        if now - self.since >= 1.0:
            self.rate, self.count, self.since = self.count / (now - self.since), 0, now
        if read < GATHER_BELOW and self.rate < GATHER_RATE:
            stop.wait(GATHER_SECONDS)


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
    """The session life cycle both sources share, supervised: connect, run a session until
    stopped or it fails, count and log the failure, back off, start a new session. Nothing that
    ends a session ends the thread: a reader that died would leave the exporter blind while
    /metrics still answered."""

    name: str
    restored = True  # False while a source restores state a restart would otherwise reset
    socket_timeout = 10.0  # seconds a read on the session's connection may wait
    longest_wait = 0.0  # seconds a healthy read may block (then STALL_SECONDS more is a stall)

    def __init__(self, redis_url: str, health: RedisHealth) -> None:
        self.redis_url = redis_url
        self.health = health
        self.gather = Gather()  # also the time of the last read
        self._backoff = Backoff()
        self._ready = False
        health.watch(self)

    @property
    def ready(self) -> bool:
        """A session is established (subscribed, groups in place)."""
        return self._ready

    def reading(self, now: float) -> bool:
        """Session established, Redis answering its health check, and a read returned lately
        (`now`: time.monotonic())."""
        return (self._ready and self.health.responsive
                and now - self.gather.last < self.longest_wait + STALL_SECONDS)

    def last_read(self) -> float:
        """When a read last returned, in epoch seconds."""
        return time.time() - (time.monotonic() - self.gather.last)

    def live(self) -> None:
        """Called by a session once it is established (subscribed, groups in place)."""
        self._ready = True
        self.health.connected(self.name)

    def session(self, client: redis.Redis, stop: threading.Event) -> None:
        """Read until `stop` is set; raise when the session cannot go on."""
        raise NotImplementedError

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                client = redis_client(self.redis_url, timeout=self.socket_timeout)
                try:
                    self.session(client, stop)
                finally:
                    self._ready = False
                    client.close()
            except BaseException as exc:  # everything (SystemExit too): a bug to count and survive
                if self.gather.last > started:  # it had been reading: a new failure, not the same
                    self._backoff.reset()
                self.health.failed(self.name, exc, "starting a new session after a backoff")
                self._backoff.wait(stop)
