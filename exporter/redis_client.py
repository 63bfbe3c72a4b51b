"""The one way the exporter makes Redis clients.

Every part (event sources, key checks, the alert bridge) gets its client here, each with the
timeouts and retries its job needs; what they share (how a URL is read, keepalive, RESP2) is
decided once.
"""
from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def client(url: str, timeout: float, retries: int = 0,
           connect_timeout: float = 2.0) -> redis.Redis:
    """A client whose every read waits at most `timeout` seconds.

    `retries` 0 surfaces every lost connection to the caller (redis-py would otherwise retry
    silently), so the sources can count reconnects and re-subscribe. RESP2: under RESP3 every
    pub/sub message takes redis-py's push-notification path, several times slower.
    """
    return redis.Redis.from_url(url, socket_timeout=timeout,
                                socket_connect_timeout=connect_timeout,
                                socket_keepalive=True, retry=Retry(NoBackoff(), retries),
                                protocol=2)

