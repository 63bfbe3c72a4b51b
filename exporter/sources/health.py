"""Whether the exporter is really reading: per source, and Redis as a whole.

A monitor that stops reading while it still answers scrapes is the worst failure it can have, so
"up" is never taken on trust. A source is reading while its session is established, Redis
answers a PING on a connection of its own, and a read returned lately (a stream read that
returned empty counts; a quiet subscription still gets the exporter's canary every 5 s). All
three are evaluated at scrape time, from state the readers keep anyway, so none of this costs
the read loops anything: `agent_exporter_source_up`,
`agent_exporter_source_last_read_timestamp_seconds` and `agent_exporter_redis_up` (1 only while
Redis answers and every source reads) come from one evaluation and cannot contradict each other.

Every failure a source survives is counted in `agent_exporter_source_errors_total{source,error}`
(error: the Redis error code or the exception's class, never its message) and logged once a
minute per source and error.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Protocol

import redis
from prometheus_client.core import GaugeMetricFamily, Metric

from ..redis_client import client as redis_client
from ..store import Store
from ..throttle import Throttled

log = logging.getLogger(__name__)

PING_SECONDS = 2.0  # between health checks
PING_TIMEOUT = 5.0  # a PING unanswered this long means a hung Redis (detected within ~7 s)

# Redis error codes (the first word of an error reply) used as label values as they are; any
# other error is named by its exception class, so the label stays bounded.
REDIS_ERROR_CODES = frozenset({
    "ERR", "WRONGTYPE", "NOGROUP", "BUSYGROUP", "UNBLOCKED", "NOPERM", "NOAUTH", "WRONGPASS",
    "LOADING", "BUSY", "READONLY", "OOM", "MISCONF", "MASTERDOWN", "NOREPLICAS", "EXECABORT",
    "NOSCRIPT", "MOVED", "ASK", "TRYAGAIN", "CROSSSLOT", "CLUSTERDOWN",
})


def error_name(exc: BaseException) -> str:
    """A bounded label value for a failure: a Redis error reply's code (NOGROUP, WRONGTYPE,
    NOPERM, …), else the exception's class name."""
    if isinstance(exc, redis.ResponseError):
        code = getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0]
        if code in REDIS_ERROR_CODES:
            return code
    return type(exc).__name__


class Watched(Protocol):
    """What the health check reads of a source, at scrape time."""

    name: str

    def reading(self, now: float) -> bool: ...

    def last_read(self) -> float: ...


class RedisHealth:
    """Health of the event sources: the PING check, the scrape-time gauges, the error and
    reconnect counters."""

    def __init__(self, store: Store, redis_url: str) -> None:
        self.store = store
        self.redis_url = redis_url
        self.sources: list[Watched] = []
        self.responsive = False  # Redis answered the last PING; False until the first does
        self.errors = store.family("agent_exporter_source_errors_total", "counter",
                                   "Failures an event source survived, by source and error (a "
                                   "Redis error code or an exception class).",
                                   ["source", "error"], ttl=0)
        self.reconnects = store.family("agent_exporter_redis_reconnects_total", "counter",
                                       "Sessions of the event sources lost and re-established.",
                                       ttl=0)
        self.errors.persist = self.reconnects.persist = False  # live state, not checkpointed
        self._connected: set[str] = set()
        self._complain = Throttled(log)
        with store.lock:
            self.reconnects.inc((), 0.0)

    def watch(self, source: Watched) -> None:
        self.sources.append(source)

    # -- reported by the sources --------------------------------------------------------------

    def connected(self, source: str) -> None:
        """A session of `source` is established (subscribed, groups ready)."""
        with self.store.lock:
            again = source in self._connected  # any session after the first is a reconnect
            if again:
                self.reconnects.inc(())
            self._connected.add(source)
        if again:
            self._complain((source, "again"), logging.INFO, "%s: reading again", source)

    def failed(self, source: str, exc: BaseException, then: str) -> None:
        """Count and log a failure `source` survives; `then` says what it does next."""
        error = error_name(exc)
        with self.store.lock:
            self.errors.inc((source, error))
        bug = not isinstance(exc, (redis.RedisError, OSError))  # not Redis' doing: a bug
        self._complain((source, error), logging.ERROR if bug else logging.WARNING,
                       "%s: %s: %s; %s (further %s errors of this source are logged once a "
                       "minute)", source, error, exc, then, error, exc_info=exc if bug else None)

    # -- the PING check -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """PING Redis every PING_SECONDS on a connection of its own. A reader blocked in a read
        cannot tell a quiet Redis from a hung one; this can."""
        client = redis_client(self.redis_url, timeout=PING_TIMEOUT, connect_timeout=PING_TIMEOUT)
        while True:
            self._check(client)
            if stop.wait(PING_SECONDS):
                break
        client.close()

    def _check(self, client: redis.Redis) -> None:
        problem: Exception | None = None
        try:
            client.ping()
        except redis.ResponseError as exc:  # an answer (NOPERM, …): alive, unless it is busy
            if error_name(exc) == "BUSY":  # running a script: it serves nothing else
                problem = exc
        except Exception as exc:  # no answer in time, refused, loading: not usable
            problem = exc
        if problem is None and not self.responsive:
            log.info("Redis answers")
        elif problem is not None and self.responsive:
            log.warning("Redis does not answer (%s: %s); sources are reported down",
                        type(problem).__name__, problem)
        self.responsive = problem is None

    # -- scrape time --------------------------------------------------------------------------

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        up = GaugeMetricFamily("agent_exporter_source_up",
                               "1 while the event source reads: session established, Redis "
                               "answering its health check, a read returned lately.",
                               labels=["source"])
        last = GaugeMetricFamily("agent_exporter_source_last_read_timestamp_seconds",
                                 "When the event source last read: a stream read (an empty one "
                                 "included) or a pub/sub message (the canary included); "
                                 "start-up time before the first.", labels=["source"])
        everyone = bool(self.sources)
        for source in self.sources:
            reading = source.reading(now)
            everyone = everyone and reading
            up.add_metric([source.name], 1.0 if reading else 0.0)
            last.add_metric([source.name], source.last_read())
        yield GaugeMetricFamily("agent_exporter_redis_up",
                                "1 while Redis answers the exporter's health check and every "
                                "event source reads, else 0.",
                                value=1.0 if everyone and self.responsive else 0.0)
        yield up
        yield last
