"""From raw message bytes to domain handlers: the hot path every event source feeds.

One message is one JSON object or a JSON array of them (a batch: each element stands alone).
A message that is too large or not JSON, and an element that fails its schema, is dropped whole,
counted in `agent_exporter_events_invalid_total{source,reason}` and logged once per reason a
minute. Nothing an event contains can stop the exporter: an element whose handler raises
anything else (a bug in the handler or the store) is counted with reason `internal_error`.
"""
from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterable, Mapping

import orjson

from .domains import Domain
from .events import Invalid, timestamp
from .store import HistogramSeries, Series, Store
from .throttle import Throttled

log = logging.getLogger(__name__)

LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
MAX_PUBLISHERS = 100_000  # per source: sequence state kept for loss detection


class Dispatcher:
    def __init__(self, store: Store, routes: Mapping[str, Domain], max_event_bytes: int) -> None:
        self.store = store
        self.routes = dict(routes)
        self.max_event_bytes = max_event_bytes
        self.events = store.family("agent_exporter_events_total", "counter",
                                   "Events applied, by source (channel or stream) and event type.",
                                   ["source", "type"], ttl=0)
        self.invalid = store.family("agent_exporter_events_invalid_total", "counter",
                                    "Events dropped because they did not fit the contract, by "
                                    "source and reason.", ["source", "reason"], ttl=0)
        self.lost = store.family("agent_exporter_events_lost_total", "counter",
                                 "Pub/sub events missed, from gaps in the publishers' sequence "
                                 "numbers.", ["source"], ttl=0)
        self.lag = store.family("agent_exporter_event_lag_seconds", "histogram",
                                "Receive time minus the event's own timestamp, when it has one.",
                                ["source"], LAG_BUCKETS, ttl=0)
        self._series: dict[tuple[str, str], tuple[Series, HistogramSeries]] = {}
        self._complain = Throttled(log)
        self._sequences: dict[str, dict[str, int]] = {}  # source → publisher → last _seq

    def dispatch(self, route: str, source: str, payload: bytes, sequenced: bool = False) -> None:
        """Apply one message. `route` is the configured channel/pattern/stream, `source` the
        concrete channel or stream it arrived on; `sequenced` turns on gap counting (pub/sub)."""
        self.dispatch_many(route, source, (payload,), sequenced)

    def dispatch_many(self, route: str, source: str, payloads: Iterable[bytes | None],
                      sequenced: bool = False) -> None:
        """Apply a batch of messages from one source under one lock hold (None: skipped).

        The loop is the exporter's hottest code: per event it checks the envelope, calls the
        domain's handler and keeps this source's counters in locals, written back once."""
        domain = self.routes[route]
        handle = domain.handle
        documents, rejected = self._parse(payloads)
        with self.store.lock:
            now = self.store.clock.tick()
            for reason, detail in rejected:
                self._count_invalid(source, reason, detail)
            applied, lag = self._per_source(source, domain.name)
            bounds, counts = self.lag.bounds, lag.counts
            sequences = self._publishers(source) if sequenced else None
            done, delays = 0, 0.0
            for document in documents:
                for event in document if document.__class__ is list else (document,):
                    if event.__class__ is not dict:
                        self._count_invalid(source, "not_object", f"got {type(event).__name__}")
                        continue
                    try:
                        sent = timestamp(event)
                        handle(event, source)
                    except Invalid as exc:
                        self._count_invalid(source, exc.reason, str(exc))
                        continue
                    except Exception as exc:  # a bug in a handler or the store: not the reader's end
                        self._count_invalid(source, "internal_error", f"{type(exc).__name__}: {exc}")
                        continue
                    done += 1
                    if sent is not None:
                        delay = now - sent if now > sent else 0.0
                        counts[bisect_left(bounds, delay)] += 1
                        delays += delay
                    if sequences is not None:
                        publisher, seq = event.get("_pub"), event.get("_seq")
                        if seq.__class__ is int and publisher.__class__ is str:
                            last = sequences.get(publisher)
                            if last is not None and seq > last + 1:
                                self.lost.inc((source,), seq - last - 1)
                            sequences[publisher] = seq  # lower: a restarted publisher
            applied.value += done
            lag.sum += delays
            applied.touched = lag.touched = now

    def _parse(self, payloads: Iterable[bytes | None]) -> tuple[list, list[tuple[str, str]]]:
        """Decoded messages, and (reason, detail) for each one dropped whole."""
        documents, rejected = [], []
        for payload in payloads:
            if payload is None:
                continue
            if len(payload) > self.max_event_bytes:
                rejected.append(("too_large", f"{len(payload)} bytes (max_event_bytes "
                                              f"{self.max_event_bytes})"))
                continue
            try:
                documents.append(orjson.loads(payload))
            except orjson.JSONDecodeError as exc:
                rejected.append(("not_json", str(exc)))
        return documents, rejected

    def _per_source(self, source: str, kind: str) -> tuple[Series, HistogramSeries]:
        """The source's own series, looked up once (they never expire)."""
        pair = self._series.get((source, kind))
        if pair is None:
            pair = self._series[(source, kind)] = (self.events.child((source, kind)),
                                                   self.lag.child((source,)))
        return pair

    def _publishers(self, source: str) -> dict[str, int]:
        """The last sequence number of each publisher on `source`, bounded in number."""
        sequences = self._sequences.get(source)
        if sequences is None:
            sequences = self._sequences[source] = {}
        elif len(sequences) >= MAX_PUBLISHERS:
            sequences.clear()
        return sequences

    def _count_invalid(self, source: str, reason: str, detail: str) -> None:
        self.invalid.inc((source, reason))
        self._complain(reason, logging.WARNING, "dropped invalid event on %s: %s (%s); further "
                       "%s events are logged once a minute", source, reason, detail[:200], reason)
