"""Redis pub/sub: the seeds' transport. At-most-once: what is published while the exporter is
away is gone, and a subscriber that falls behind is cut off by Redis' output-buffer limit. Both
are made visible: reconnects are counted, and sequence gaps in `agent_exporter_events_lost_total`.

Replies are read straight off the connection (not through PubSub.get_message) to skip a dict per
message on the hot path, and so that a dropped connection reaches us instead of being retried
silently inside redis-py.
"""
from __future__ import annotations

import logging
import threading

import redis

from ..channels import is_pattern
from ..dispatcher import Dispatcher
from . import Backoff, RedisHealth

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


class PubSubSource:
    name = "pubsub"

    def __init__(self, redis_url: str, routes: list[str], dispatcher: Dispatcher,
                 health: RedisHealth) -> None:
        self.redis_url = redis_url
        self.channels = [r for r in routes if not is_pattern(r)]
        self.patterns = [r for r in routes if is_pattern(r)]
        self.dispatcher = dispatcher
        self.health = health
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2,
                                          socket_keepalive=True)
            pubsub = client.pubsub()
            try:
                self._subscribe(pubsub)
                backoff.reset()
                self.health.connected(self.name)
                self._ready = True
                self._read(pubsub.connection, stop)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                self._ready = False
                self.health.lost(self.name, exc)
                backoff.wait(stop)
            finally:
                self._ready = False
                pubsub.close()
                client.close()

    def _subscribe(self, pubsub: redis.client.PubSub) -> None:
        if self.channels:
            pubsub.subscribe(*self.channels)
        if self.patterns:
            pubsub.psubscribe(*self.patterns)
        expected = len(self.channels) + len(self.patterns)
        confirmed = 0
        while confirmed < expected:  # live only once Redis confirmed every subscription
            reply = pubsub.connection.read_response(push_request=True, timeout=5)
            if reply and reply[0] in (b"subscribe", b"psubscribe"):
                confirmed += 1

    def _read(self, connection: redis.connection.Connection, stop: threading.Event) -> None:
        dispatch = self.dispatcher.dispatch
        while not stop.is_set():
            if not connection.can_read(timeout=POLL_SECONDS):
                continue
            reply = connection.read_response(push_request=True)
            kind = reply[0]
            if kind == b"message":
                channel = reply[1].decode()
                dispatch(channel, channel, reply[2], True)
            elif kind == b"pmessage":
                dispatch(reply[1].decode(), reply[2].decode(), reply[3], True)
