"""Other subscribers of the exporter's pub/sub channels, looked for once at start.

Pub/sub gives every subscriber every message: two exporters on one channel each count every
event. An HA pair wants that (both are scraped, their counters are never summed); exporters
meant to share the load do not, and are told to use a stream consumer group instead. Warned,
never refused: the other subscriber may be the pair's twin, or an agent listening in.
"""
from __future__ import annotations

import logging
import threading

import redis

from ..redis_client import client as redis_client
from .pubsub import PubSubSource

log = logging.getLogger(__name__)


def warn_if_shared(source: PubSubSource, redis_url: str, stop: threading.Event) -> None:
    """Once `source` has subscribed, log a warning if PUBSUB NUMSUB counts others."""
    while not source.ready:
        if stop.wait(0.1):
            return
    channels = [c for c in source.channels if c != source.canary]
    client = redis_client(redis_url, timeout=5.0)
    try:
        counts = [n for _, n in client.pubsub_numsub(*channels)] if channels else []
    except (redis.RedisError, OSError) as exc:
        log.debug("could not count the other pub/sub subscribers: %s", exc)
        return
    finally:
        client.close()
    others = {channel: n - 1 for channel, n in zip(channels, counts) if n > 1}
    if not others:
        log.debug("no other subscriber on the pub/sub channels")
    else:
        log.warning("other clients subscribe to %s: every pub/sub subscriber receives every "
                    "event, so another exporter there counts each event again. Right for an HA "
                    "pair (scrape both, never sum them); to share the load, run the exporters "
                    "with source: streams in one consumer group",
                    ", ".join(f"{c} ({n})" for c, n in sorted(others.items())))
