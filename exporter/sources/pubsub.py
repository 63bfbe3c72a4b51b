"""Redis pub/sub: the seeds' transport. At-most-once: what is published while the exporter is
away is gone, and a subscriber that falls behind is cut off by Redis' output-buffer limit. Both
are made visible: reconnects are counted, and sequence gaps in `agent_exporter_events_lost_total`.

A canary travels the same path: the source publishes to its own channel every few seconds. If
Redis takes the canaries but none arrives, the connection is half-open (or Redis dropped the
subscription) and the source reconnects instead of waiting forever on a dead socket.

Replies are read straight off the connection (not through PubSub.get_message) to skip a dict per
message on the hot path, and so that a dropped connection reaches us instead of being retried
silently inside redis-py.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from ..contract import is_pattern
from ..dispatcher import Dispatcher
from ..redis_client import client as redis_client
from . import RedisHealth, RedisSource, name_text

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
BATCH = 500  # replies applied under one lock hold
CANARY_SECONDS = 5.0
CANARY_MISSES = 3  # canaries published and not received before the connection is given up


class SilentSubscription(redis.ConnectionError):
    """Redis takes the canaries, none comes back: the subscription is dead."""


class PubSubSource(RedisSource):
    name = "pubsub"
    # The idle wait of a read is the connection's own timeout: a read given a timeout of its
    # own costs two more system calls (setting it and restoring it) per wake-up.
    socket_timeout = POLL_SECONDS
    # A quiet subscription still receives the canary: a read that returns nothing does not count
    # (a hung Redis lets it time out as well), a message does.
    longest_wait = CANARY_SECONDS

    def __init__(self, redis_url: str, routes: list[str], dispatcher: Dispatcher,
                 health: RedisHealth) -> None:
        super().__init__(redis_url, health)
        self.channels = [r for r in routes if not is_pattern(r)]
        self.patterns = [r for r in routes if is_pattern(r)]
        self.dispatcher = dispatcher
        self.canary = f"agent-exporter:canary:{socket.gethostname()}:{os.getpid()}"
        self.channels.append(self.canary)
        self._canary_received = time.monotonic()
        self._canary_published = 0.0  # when a canary was last sent while subscribed
        self._canary_due = threading.Event()  # set: send one now, not at the next interval

    def canary_age(self) -> float:
        """Seconds since the last canary came back (the scrape-time age metric)."""
        return time.monotonic() - self._canary_received

    def run(self, stop: threading.Event) -> None:
        threading.Thread(target=self._send_canaries, args=(stop,), name="canary",
                         daemon=True).start()
        super().run(stop)

    def session(self, client: redis.Redis, stop: threading.Event) -> None:
        pubsub = client.pubsub()
        try:
            self._subscribe(pubsub)
            self.live()
            self._canary_due.set()  # its return is the session's first read
            self._read(pubsub.connection, stop)
        finally:
            pubsub.close()

    def _subscribe(self, pubsub: redis.client.PubSub) -> None:
        if self.channels:
            pubsub.subscribe(*self.channels)
        if self.patterns:
            pubsub.psubscribe(*self.patterns)
        expected = len(self.channels) + len(self.patterns)
        confirmed = 0
        while confirmed < expected:  # live only once Redis confirmed every subscription
            assert pubsub.connection is not None  # subscribe() made it
            reply = pubsub.connection.read_response(push_request=True, timeout=5)
            if reply and reply[0] in (b"subscribe", b"psubscribe"):
                confirmed += 1

    def _read(self, connection: redis.connection.Connection, stop: threading.Event) -> None:
        """Wait for a message, then take every reply already buffered (up to BATCH) and apply
        them one batch per channel: the per-message cost of locking is paid per batch. At a
        low rate, pause after a small batch so that the next read takes several (Gather)."""
        canary = self.canary.encode()
        names: dict[bytes, str] = {}  # channel names decoded once
        gather = self.gather
        parsed = _parsed_replies(connection)
        self._canary_received = time.monotonic()
        while not stop.is_set():
            try:  # a read with a deadline (socket_timeout), not a poll before every message
                replies = [connection.read_response(disconnect_on_error=False)]
            except redis.TimeoutError:
                self._check_canary()  # idle: a chance to see that the subscription died
                continue
            while len(replies) < BATCH:
                reply = parsed()  # already received and parsed: no system call
                if reply.__class__ is list:
                    replies.append(reply)
                    continue
                if isinstance(reply, Exception):
                    raise redis.ResponseError(str(reply))
                # More on the socket? One poll answers that cheaply at a low rate.
                if not connection.can_read(timeout=0):
                    break
                try:
                    replies.append(connection.read_response(timeout=0, disconnect_on_error=False))
                except redis.TimeoutError:
                    break
            self._apply(replies, canary, names)
            gather.after(len(replies), stop)

    def _apply(self, replies: list, canary: bytes, names: dict[bytes, str]) -> None:
        """Apply replies one batch per channel (and pattern). Order is kept within a channel;
        across channels it does not matter (each feeds its own series and has its own sequence
        numbers), and one batch per channel instead of one per run of a channel saves most of
        the per-batch cost when publishers interleave."""
        batches: dict[object, tuple[str, str, list[bytes]]] = {}
        for reply in replies:
            kind = reply[0]
            if kind == b"message":
                if reply[1] == canary:
                    self._canary_received = time.monotonic()
                    continue
                key, payload = reply[1], reply[2]
            elif kind == b"pmessage":
                key, payload = (reply[1], reply[2]), reply[3]
            else:
                continue
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = _route(reply, names) + ([],)
            batch[2].append(payload)
        for route, channel, payloads in batches.values():
            self.dispatcher.dispatch_many(route, channel, payloads, True)

    def _check_canary(self) -> None:
        silent = self._canary_published - self._canary_received
        if silent > CANARY_MISSES * CANARY_SECONDS:
            raise SilentSubscription(f"no canary for {silent:.0f}s while Redis accepted them: "
                                     "the subscription is dead")

    def _send_canaries(self, stop: threading.Event) -> None:
        client = redis_client(self.redis_url, timeout=10.0)
        while not stop.is_set():
            self._canary_due.wait(CANARY_SECONDS)
            self._canary_due.clear()
            if stop.is_set() or not self._ready:
                continue
            try:
                client.publish(self.canary, b"1")
                self._canary_published = time.monotonic()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                continue  # an outage: the reader and the health check notice it on their own
            except Exception as exc:  # PUBLISH refused (an ACL) or a bug: say so, keep trying
                self.health.failed(self.name, exc, "the canary is not sent, so a quiet "
                                   "subscription is reported as not reading")
        client.close()


def _route(reply: list, names: dict[bytes, str]) -> tuple[str, str]:
    """(route, channel) of a message or pmessage reply. Subscribed names are decoded once;
    the channels a pattern matches are not kept (there may be any number of them)."""
    route = names.get(reply[1]) or names.setdefault(reply[1], name_text(reply[1]))
    return (route, route) if reply[0] == b"message" else (route, name_text(reply[2]))


def _parsed_replies(connection: redis.connection.Connection) -> Callable[[], object]:
    """The next reply hiredis has already parsed from what the socket delivered (not a list
    when there is none). redis-py has no call for it, so this reaches into its hiredis parser;
    read_response, which it replaces for buffered replies, costs ~2 µs of Python per message
    (a quarter of the reader's CPU in a burst). Without hiredis: nothing, and every reply
    goes through read_response."""
    reader: Any = getattr(getattr(connection, "_parser", None), "_reader", None)
    return reader.gets if hasattr(reader, "gets") else lambda: None
