"""A Redis pub/sub subscriber that collects what the exporter publishes (alerts, insights)."""
from __future__ import annotations

from typing import Any

import orjson
import redis

from tests.support.procs import wait_until


class Subscriber:
    """A Redis pub/sub subscriber on a pattern (events:alerts:*) that collects decoded messages."""

    def __init__(self, redis_url: str, pattern: str = "events:alerts:*") -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub()
        self.pattern = pattern
        self.pubsub.psubscribe(pattern)
        self.received: list[tuple[str, dict[str, Any]]] = []
        wait_until(lambda: (self.pubsub.get_message(timeout=0.1) or {}).get("type") == "psubscribe",
                   message="Redis to confirm the subscription")

    def poll(self) -> list[tuple[str, dict[str, Any]]]:
        while (message := self.pubsub.get_message(timeout=0.05)) is not None:
            if message["type"] == "pmessage":
                self.received.append((message["channel"].decode(), orjson.loads(message["data"])))
        return self.received

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        return wait_until(lambda: len(self.poll()) >= count and self.received, timeout=timeout,
                          message=f"{count} message(s) on {self.pattern}")

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()
