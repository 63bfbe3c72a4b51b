"""The metric store for event-fed metrics.

prometheus-client's metric objects cannot bound their series, expire them, or checkpoint them,
and its `generate_latest` formats every sample anew on each scrape. Event metrics live here
instead: each series keeps its label text pre-rendered, so a scrape only formats numbers.

Every family is checked where it is created: a valid name and labels for its kind, at most
`max_labels` labels, and no name that another family exposes (exporter/names.py). What fails is
refused (`Refused`, with a reason its maker counts), so a scrape always parses.

Threading: the ingest threads mutate under `Store.lock`; the renderer takes the same lock in
chunks, so a scrape of many series never stalls ingestion for long. It takes the lock ahead of
the ingest threads (`priority`), which give way every few events (`wanted`, `give_way`), so a
large batch never stalls a scrape for long either.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .names import BUILT_IN, RECORDS, Names
from .validation import label_name_problem, name_problem

log = logging.getLogger(__name__)

OVERFLOW = "__overflow__"
RENDER_CHUNK = 5000  # sample lines rendered per lock hold (~5 ms)
MAX_LABELS = 32  # labels per family, unless the store is given another bound


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (Go's float formatting for the specials)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    return repr(float(value))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class Clock:
    """Wall time read once per message by the ingest path, not once per update."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = time.time()

    def tick(self) -> float:
        self.now = time.time()
        return self.now


class Series:
    """One counter or gauge series."""

    __slots__ = ("labels", "text", "value", "touched")

    def __init__(self, labels: tuple[str, ...], text: str, now: float) -> None:
        self.labels = labels
        self.text = text  # '{a="x",b="y"}' or ''
        self.value = 0.0
        self.touched = now


class HistogramSeries:
    """One histogram series: per-bucket (not cumulative) counts, the last one +Inf."""

    __slots__ = ("labels", "text", "counts", "sum", "touched")

    def __init__(self, labels: tuple[str, ...], text: str, now: float, n_buckets: int) -> None:
        self.labels = labels
        self.text = text  # 'a="x",b="y",' — the le label is appended at render time
        self.counts = [0] * n_buckets
        self.sum = 0.0
        self.touched = now


class Refused(ValueError):
    """A family the exposition cannot hold; `reason` is a bounded label value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def shape_problem(name: str, kind: str, labelnames: tuple[str, ...],
                  max_labels: int) -> tuple[str, str] | None:
    """(reason, detail) when a family of this name, kind and labels would not parse or would
    fail promtool, else None."""
    problem = name_problem(name, kind)
    if problem:
        return "bad_metric_name", problem
    if len(labelnames) > max_labels:
        return "too_many_labels", f"{name} would have {len(labelnames)} labels (max_labels {max_labels})"
    for i, label in enumerate(labelnames):
        problem = label_name_problem(label, kind)
        if problem:
            return "bad_label_name", f"{name}: label {problem}"
        if label in labelnames[:i]:
            return "duplicate_label", f"{name}: label {label!r} appears twice"
    return None


class Family:
    """A metric family: name, kind, label names, its series, budget and expiry."""

    def __init__(self, store: Store, name: str, kind: str, help: str,
                 labelnames: Sequence[str] = (), buckets: Sequence[float] | None = None,
                 budget: int | None = None, ttl: float | None = None,
                 source: str = BUILT_IN) -> None:
        if kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"unknown metric kind {kind!r}")
        problem = shape_problem(name, kind, tuple(labelnames), store.max_labels)
        if problem:
            raise Refused(*problem)
        self.store = store
        self.clock = store.clock
        self.name = name  # the exposition name: counters end in _total
        self.kind = kind
        self.help = help
        self.labelnames = tuple(labelnames)
        self.source = source  # what made it (exporter/names.py); RECORDS: recreated on restore
        self.budget = budget
        self.ttl = ttl
        self.persist = True  # included in checkpoints
        self.series: dict[tuple[str, ...], Any] = {}
        self.bounds: tuple[float, ...] = ()
        self._le: tuple[str, ...] = ()
        if kind == "histogram":
            bounds = sorted(float(b) for b in (buckets or ()) if b != math.inf)
            if not bounds:
                raise ValueError(f"histogram {name} needs buckets")
            self.bounds = tuple(bounds)
            self._le = tuple(format_value(b) for b in bounds) + ("+Inf",)
        self._overflow_key = (OVERFLOW,) * len(self.labelnames)

    # -- the hot path -------------------------------------------------------------------------

    def child(self, key: tuple[str, ...]) -> Any:
        """The series for a label-value tuple, created on first use within the budget."""
        series = self.series.get(key)
        if series is not None:
            return series
        budget = self.budget if self.budget is not None else self.store.default_budget
        if len(self.series) >= budget and key != self._overflow_key:
            self.store.overflowed(self.name)
            return self.child(self._overflow_key)
        return self._create(key)

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        series = self.series.get(key) or self.child(key)
        series.value += amount
        series.touched = self.clock.now

    def set(self, key: tuple[str, ...], value: float) -> None:
        series = self.series.get(key) or self.child(key)
        series.value = value
        series.touched = self.clock.now

    def observe(self, key: tuple[str, ...], value: float) -> None:
        series = self.series.get(key) or self.child(key)
        series.counts[bisect_left(self.bounds, value)] += 1
        series.sum += value
        series.touched = self.clock.now

    # -- maintenance --------------------------------------------------------------------------

    def _create(self, key: tuple[str, ...]) -> Any:
        # An empty label value is no label to Prometheus: left out, the text says the same.
        pairs = ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(self.labelnames, key) if v)
        now = self.clock.now
        series: Series | HistogramSeries
        if self.kind == "histogram":
            series = HistogramSeries(key, pairs + "," if pairs else "", now, len(self._le))
        else:
            series = Series(key, "{" + pairs + "}" if pairs else "", now)
        self.series[key] = series
        return series

    def expire(self, now: float) -> int:
        """Drop series not updated for `ttl` seconds; returns how many went."""
        ttl = self.ttl if self.ttl is not None else self.store.default_ttl(self.kind)
        if not ttl:
            return 0
        cutoff = now - ttl
        stale = [k for k, s in self.series.items() if s.touched < cutoff]
        for key in stale:
            del self.series[key]
        return len(stale)

    # -- exposition ---------------------------------------------------------------------------

    def header(self, openmetrics: bool) -> str:
        name = self.name
        if openmetrics and self.kind == "counter" and name.endswith("_total"):
            name = name[:-6]
        return f"# HELP {name} {escape_help(self.help)}\n# TYPE {name} {self.kind}\n"

    def lines(self, chunk: Iterable[Any]) -> Iterator[str]:
        name = self.name
        if self.kind != "histogram":
            for s in chunk:
                yield f"{name}{s.text} {format_value(s.value)}\n"
            return
        le = self._le
        for s in chunk:
            total = 0
            for edge, count in zip(le, s.counts):
                total += count
                yield f'{name}_bucket{{{s.text}le="{edge}"}} {total}\n'
            labels = "{" + s.text[:-1] + "}" if s.text else ""
            yield f"{name}_sum{labels} {format_value(s.sum)}\n{name}_count{labels} {total}\n"

    # -- checkpoints --------------------------------------------------------------------------

    def dump(self) -> list[list[Any]]:
        if self.kind == "histogram":
            return [[list(s.labels), s.counts, s.sum, s.touched] for s in self.series.values()]
        return [[list(s.labels), s.value, s.touched] for s in self.series.values()]

    def load(self, rows: list[list[Any]]) -> None:
        """Merge checkpointed series in: counts add to what arrived since start-up, a gauge
        keeps a value set since start-up (it is newer). Series objects stay the same."""
        for row in rows:
            key = tuple(row[0])
            if len(key) != len(self.labelnames):
                continue
            series: Any = self.series.get(key)
            fresh = series is None
            if fresh:
                series = self._create(key)
            if self.kind == "histogram":
                if len(row[1]) == len(series.counts):
                    series.counts = [a + int(b) for a, b in zip(series.counts, row[1])]
                    series.sum += float(row[2])
            elif self.kind == "counter":
                series.value += float(row[1])
            elif fresh:
                series.value = float(row[1])
            if fresh:
                series.touched = float(row[-1])


class Store:
    """All event-fed families, their shared lock and clock, budgets and expiry."""

    def __init__(self, default_budget: int = 10_000, gauge_ttl: float = 1800.0,
                 counter_ttl: float = 86400.0, max_labels: int = MAX_LABELS,
                 names: Names | None = None) -> None:
        """Idle series expire after `gauge_ttl` seconds for gauges and `counter_ttl` for counters
        and histograms (0: never). Gauges show state, which goes stale; counters feed
        `increase()`, and a counter that vanishes while idle would end "too little happened"
        answers exactly when they matter, so they stay much longer. `names` is shared with
        whatever else exposes families in the same scrape."""
        self.lock = threading.Lock()
        self._gate = threading.Lock()  # held by a reader while it waits for `lock`
        self.clock = Clock()
        self.default_budget = default_budget
        self.gauge_ttl = gauge_ttl
        self.counter_ttl = counter_ttl
        self.max_labels = max_labels
        self.names = names or Names()
        self.families: dict[str, Family] = {}
        self._overflow = Family(self, "agent_exporter_series_overflow_total", "counter",
                                "Label sets that exceeded their family's series budget and were "
                                "folded into the __overflow__ series.", ["metric"])
        self._expired = Family(self, "agent_exporter_series_expired_total", "counter",
                               "Series removed because no event updated them within the TTL.",
                               ["metric"])
        self._own = (self._overflow, self._expired)
        for family in self._own:
            family.ttl = 0  # the exporter's own series never expire
            self._add(family)

    def family(self, name: str, kind: str, help: str, labelnames: Sequence[str] = (),
               buckets: Sequence[float] | None = None, budget: int | None = None,
               ttl: float | None = None, source: str = BUILT_IN) -> Family:
        """Register a family (or return the one of that name if it matches); `Refused` when its
        shape cannot be exposed or another family exposes one of its names."""
        existing = self.families.get(name)
        if existing is not None:
            if existing.source != source or existing.kind != kind:
                raise Refused("metric_name_collision", f"{name} ({kind}) is already the "
                                                       f"{existing.source} {existing.kind} {name}")
            if existing.labelnames != tuple(labelnames):
                raise Refused("label_mismatch", f"{name} has labels {list(existing.labelnames)}, "
                                                f"not {list(labelnames)}")
            return existing
        return self._add(Family(self, name, kind, help, labelnames, buckets, budget, ttl, source))

    def _add(self, family: Family) -> Family:
        problem = self.names.claim(family.name, family.kind, family.source)
        if problem:
            raise Refused("metric_name_collision", problem)
        self.families[family.name] = family
        return family

    # -- the lock: a scrape goes first --------------------------------------------------------

    @contextmanager
    def priority(self) -> Iterator[None]:
        """Hold the lock, taken ahead of the ingest threads: they give way at their next check,
        so a scrape waits for a few events, not for a whole batch."""
        with self._gate:
            self.lock.acquire()
        try:
            yield
        finally:
            self.lock.release()

    def wanted(self) -> bool:
        """Whether a reader waits for the lock (ingest threads check every few events)."""
        return self._gate.locked()

    def give_way(self) -> None:
        """For a thread holding the lock: let the waiting reader have it, then take it back.
        The reader holds the gate until it has the lock, so it cannot be overtaken."""
        self.lock.release()
        with self._gate:
            pass
        self.lock.acquire()

    def default_ttl(self, kind: str) -> float:
        return self.gauge_ttl if kind == "gauge" else self.counter_ttl

    def overflowed(self, name: str) -> None:
        self._overflow.inc((name,))

    def expire(self, now: float | None = None) -> None:
        """Remove stale series from every family (called once per scrape)."""
        with self.priority():
            now = self.clock.tick() if now is None else now
            for family in list(self.families.values()):
                if family in self._own:
                    continue
                gone = family.expire(now)
                if gone:
                    self._expired.inc((family.name,), gone)

    def series_count(self) -> dict[str, int]:
        with self.priority():
            return {name: len(f.series) for name, f in self.families.items()}

    def render(self, openmetrics: bool = False, persisted: bool = True) -> Iterator[str]:
        """The exposition text of every family, rendered in lock-held chunks of about
        RENDER_CHUNK lines (small families share one). `persisted=False` leaves out
        checkpointed families: before a restore they would look like a reset."""
        families = [f for f in list(self.families.values()) if persisted or not f.persist]
        index, offset, rows = 0, 0, []
        while index < len(families):
            if index or offset:
                # Lock is not fair: without giving up the GIL here the renderer would take the
                # lock straight back and starve the ingest threads for a whole family.
                time.sleep(0)
            parts, budget = [], RENDER_CHUNK
            with self.priority():
                while index < len(families) and budget > 0:
                    family = families[index]
                    if offset == 0:  # a family's rows are taken once: its chunks never overlap
                        rows = list(family.series.values())
                        if rows:
                            parts.append(family.header(openmetrics))
                    per_row = len(family._le) + 2 if family.kind == "histogram" else 1
                    chunk = rows[offset:offset + max(1, budget // per_row)]
                    parts.append("".join(family.lines(chunk)))
                    budget -= max(1, len(chunk) * per_row)
                    offset += len(chunk)
                    if offset >= len(rows):
                        index, offset = index + 1, 0
            yield "".join(parts)  # never yield with the lock held

    def dump(self) -> dict[str, Any]:
        """Every family's series, for a checkpoint (call with the lock held). Families created
        at run time carry their shape so a restore can recreate them."""
        snapshot: dict[str, Any] = {}
        for name, f in self.families.items():
            if f.series and f.persist:
                entry: dict[str, Any] = {"rows": f.dump()}
                if f.source == RECORDS:
                    entry["shape"] = [f.kind, f.help, list(f.labelnames), list(f.bounds)]
                snapshot[name] = entry
        return snapshot

    def load(self, snapshot: dict[str, Any]) -> None:
        """Restore a checkpoint: registered families by name, run-time ones (records')
        recreated; one that can no longer be exposed (another family took one of its names) is
        left out, and logged."""
        with self.lock:
            for name, entry in snapshot.items():
                family = self.families.get(name)
                if family is None and "shape" in entry:
                    kind, help, labelnames, bounds = entry["shape"]
                    try:
                        family = self.family(name, kind, help, labelnames, bounds or None,
                                             source=RECORDS)
                    except Refused as exc:
                        log.warning("checkpoint: %s left out: %s", name, exc)
                        continue
                if family is not None and family.persist:
                    family.load(entry["rows"])
