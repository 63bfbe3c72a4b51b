"""From raw message bytes to domain handlers: the hot path every event source feeds.

One message is one JSON object or a JSON array of them (a batch: each element stands alone).
A message that is too large or not JSON, and an element that fails its schema, is dropped whole,
counted in `agent_exporter_events_invalid_total{source,reason}` and logged once per reason a
minute. Nothing an event contains can stop the exporter: an element whose handler raises
anything else (a bug in the handler or the store) is counted with reason `internal_error`.

Every event that arrives is counted once: applied, or invalid. Over pub/sub the publishers
number their events (`_pub`, `_seq`) and a gap counts the events that never arrived as lost; an
invalid event still moves its publisher's number on, so it is not counted lost as well. A jump
of more than MAX_SEQUENCE_GAP, like a lower number, is a publisher that restarted.

A batch is applied under the store's lock, which a scrape takes ahead of the ingest threads:
every CHECK_EVERY events the loop gives way to a waiting scrape, so however large a read, a
scrape waits for a few events (or one run of parsing, about a millisecond), never for the whole
read.
"""
from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from .domains import Domain
from .events import Invalid, timestamp
from .store import HistogramSeries, Series, Store
from .throttle import Throttled

log = logging.getLogger(__name__)

LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
MAX_PUBLISHERS = 100_000  # per source: sequence state kept for loss detection
# A larger jump is a publisher that restarted (or a number it made up), not lost events: at
# 10 000 events/s on one channel a million is 100 s of pub/sub loss, which the reconnect and
# canary metrics show long before.
MAX_SEQUENCE_GAP = 1_000_000
# Messages are parsed a run at a time, then applied: 7 % faster than parsing each just before
# applying it (measured in process), and a run of at most 256 KiB parses in about a millisecond,
# so a scrape waiting for the lock never waits for more than that.
PARSE_AHEAD, PARSE_AHEAD_BYTES = 64, 1 << 18
CHECK_EVERY = 64  # events between two looks for a scrape waiting for the lock (~0.2 ms)
# The publisher's numbering at the end of a message (exporter/publisher.py writes it last): read
# from a message dropped unparsed (too large, not JSON), so that it is not counted lost as well.
SEQUENCE_TAIL = re.compile(rb'"_pub":"([^"\\]{1,200})","_seq":(\d{1,19})\}\s*$')


MAX_SOURCES = 10_000  # channels or streams whose bookkeeping is kept (a cache past that)
MAX_SOURCE_LENGTH = 200  # characters of a channel or stream name kept in the `source` label


class NoData(bytes):
    """A stream entry without the contract's `data` field."""


NO_DATA = NoData()


class Unread(dict):
    """What is left of a message dropped unparsed: its publisher's `_pub` and `_seq`, which keep
    the sequence going (the message was counted invalid when it was dropped)."""


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
        """Apply a batch of messages from one source under one lock hold (None: skipped), giving
        way to a waiting scrape every CHECK_EVERY events.

        The loop is the exporter's hottest code: per event it checks the envelope, calls the
        domain's handler and keeps this source's counters in locals, written back before the
        lock is given away and at the end."""
        domain = self.routes[route]
        handle = domain.handle
        store = self.store
        if len(source) > MAX_SOURCE_LENGTH:  # a label value, and a key of the caches below
            source = source[:MAX_SOURCE_LENGTH - 1] + "…"
        with store.lock:
            now = store.clock.tick()
            applied, lag = self._per_source(source, domain.name)
            bounds, counts = self.lag.bounds, lag.counts
            sequences = self._publishers(source) if sequenced else None
            done, delays, turn = 0, 0.0, CHECK_EVERY
            for document in self._documents(payloads, source):
                for event in document if document.__class__ is list else (document,):
                    turn -= 1
                    if not turn:
                        turn = CHECK_EVERY
                        if store.wanted():
                            applied.value += done
                            lag.sum += delays
                            done, delays = 0, 0.0
                            store.give_way()
                    kind = event.__class__
                    if kind is not dict and kind is not Unread:
                        self._count_invalid(source, "not_object", f"got {kind.__name__}")
                        continue
                    if sequences is not None:
                        publisher, seq = event.get("_pub"), event.get("_seq")
                        if seq.__class__ is int and publisher.__class__ is str:
                            last = sequences.get(publisher)
                            if last is not None and last + 1 < seq <= last + MAX_SEQUENCE_GAP:
                                self.lost.inc((source,), seq - last - 1)
                            sequences[publisher] = seq  # lower: a restarted publisher
                    if kind is Unread:
                        continue  # counted invalid when it was dropped
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
            applied.value += done
            lag.sum += delays
            applied.touched = lag.touched = now

    def _documents(self, payloads: Iterable[bytes | None], source: str) -> Iterator[Any]:
        """The messages decoded, a run of up to PARSE_AHEAD (or PARSE_AHEAD_BYTES) at a time: a
        read is never held parsed all at once."""
        largest = self.max_event_bytes
        loads, malformed = orjson.loads, orjson.JSONDecodeError
        documents: list[Any] = []
        parsed = 0
        for payload in payloads:
            if payload is None:
                continue
            if payload.__class__ is NoData:
                documents.append(self._dropped(payload, source, "missing_field",
                                               "the stream entry has no data field"))
                continue
            try:
                documents.append(loads(payload) if len(payload) <= largest else self._dropped(
                    payload, source, "too_large", f"{len(payload)} bytes (max_event_bytes "
                                                  f"{largest})"))
            except malformed as exc:
                documents.append(self._dropped(payload, source, "not_json", str(exc)))
            parsed += len(payload)
            if parsed >= PARSE_AHEAD_BYTES or len(documents) >= PARSE_AHEAD:
                yield from documents
                documents, parsed = [], 0
        yield from documents

    def _dropped(self, payload: bytes, source: str, reason: str, detail: str) -> list[Unread]:
        """Count a message dropped unparsed; what is left of it is its publisher's number, when
        the message ends with it (as exporter.publisher writes it)."""
        self._count_invalid(source, reason, detail)
        tail = SEQUENCE_TAIL.search(payload[-300:])
        if tail is None:
            return []
        return [Unread(_pub=tail[1].decode(errors="replace"), _seq=int(tail[2]))]

    def _per_source(self, source: str, kind: str) -> tuple[Series, HistogramSeries]:
        """The source's own series, looked up once (they never expire)."""
        pair = self._series.get((source, kind))
        if pair is None:
            if len(self._series) >= MAX_SOURCES:  # channels a pattern matched, without end
                self._series.clear()
            pair = self._series[(source, kind)] = (self.events.child((source, kind)),
                                                   self.lag.child((source,)))
        return pair

    def _publishers(self, source: str) -> dict[str, int]:
        """The last sequence number of each publisher on `source`, bounded in number."""
        sequences = self._sequences.get(source)
        if sequences is None:
            if len(self._sequences) >= MAX_SOURCES:
                self._sequences.clear()
            sequences = self._sequences[source] = {}
        elif len(sequences) >= MAX_PUBLISHERS:
            sequences.clear()
        return sequences

    def _count_invalid(self, source: str, reason: str, detail: str) -> None:
        self.invalid.inc((source, reason))
        self._complain(reason, logging.WARNING, "dropped invalid event on %s: %s (%s); further "
                       "%s events are logged once a minute", source, reason, detail[:200], reason)
