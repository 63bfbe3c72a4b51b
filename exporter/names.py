"""The names a scrape exposes, and which family holds each.

Two families that expose one name (a gauge `x_count` beside a histogram `x`, a counter `x_total`
beside a gauge `x`: OpenMetrics names both families `x`) make a scrape that Prometheus, promtool
or an OpenMetrics parser rejects whole, and the target loses every metric with it. Families come
from several places at different times: the exporter's own, the collectors', records on
`events:metrics` as they arrive, key checks as Redis keys appear. So each claims all the names it
exposes here when it is created; the first to claim a name keeps it, and a later family that
would expose it is refused, and counted by whoever made it.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .validation import sample_names

BUILT_IN = "built-in"  # the source of the exporter's own event-fed families
RECORDS = "events:metrics"  # the source of families made at run time from records


@dataclass(frozen=True)
class Holder:
    """One family: its name, kind, and what makes it (`built-in`, `collector host`, …)."""

    family: str
    kind: str
    source: str

    def __str__(self) -> str:
        return f"{self.source} {self.kind} {self.family}"


class Names:
    """Every exposed name and its holder. Thread-safe: ingest threads and scrapes claim."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, Holder] = {}

    def claim(self, family: str, kind: str, source: str) -> str | None:
        """Claim the names family `family` of `kind` exposes; None when they are its (now or
        already), else why not, naming the family that holds one of them."""
        holder = Holder(family, kind, source)
        names = sample_names(family, kind)
        with self._lock:
            for name in names:
                other = self._held.get(name)
                if other is not None and other != holder:
                    return _clash(holder, name, other)
            self._held.update(dict.fromkeys(names, holder))
        return None

    def release(self, family: str, kind: str, source: str) -> None:
        """Give up the names this family holds (those another family holds stay)."""
        holder = Holder(family, kind, source)
        with self._lock:
            for name in sample_names(family, kind):
                if self._held.get(name) == holder:
                    del self._held[name]

    def replace(self, source: str, families: Iterable[tuple[str, str]]) -> str | None:
        """Make `families` ((name, kind) pairs) exactly what `source` holds, at once: none of
        its other names stay held. If a name one of them exposes is held by another source (or
        by another of them), nothing changes and the reason is returned."""
        staged: dict[str, Holder] = {}
        with self._lock:
            for name, kind in families:
                holder = Holder(name, kind, source)
                for exposed in sample_names(name, kind):
                    other = staged.get(exposed) or self._held.get(exposed)
                    if other is not None and other != holder and (
                            other.source != source or exposed in staged):
                        return _clash(holder, exposed, other)
                    staged[exposed] = holder
            self._held = {n: h for n, h in self._held.items() if h.source != source}
            self._held.update(staged)
        return None



def _clash(holder: Holder, name: str, other: Holder) -> str:
    return f"{holder.family} ({holder.kind}) would expose {name}, which the {other} exposes"
