"""Redis-state collector: runs the key checks (exporter/collectors/key_checks.py) at scrape time.

A key becomes gauges by its type: a hash's numeric fields, a set's cardinality, a list's, stream's
or sorted set's length (queue depth), a string's number. A missing key yields no series, not a 0.

Each scrape costs a few round trips whatever the number of checks: the SCANs of all patterns run
side by side, then one pipeline of TYPE for every key found, then one pipeline of reads. Patterns
are walked with SCAN (never KEYS), at most `max_scan_calls` calls of COUNT `scan_count` per check,
and at most `max_keys` keys per check are read; the excess is counted, not exported. The socket
timeout and a time budget for the whole walk stay well under the collector deadline, so a hung
Redis costs this collector its metrics on this scrape, never the scrape.

Every family a scrape yields holds its names in the exposition (exporter/names.py): the checks'
configured names from start-up (`use`), names derived from hash fields while the fields exist. A
name another family holds (a built-in, a record's) is skipped and counted (`name_collision`).
"""
from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, Metric

from ..redis_client import client as redis_client
from ..validation import ConfigError, metric_name_problem
from .key_checks import KeyCheck
from .registry import CollectorSettings, register

LENGTH = {"set": "scard", "list": "llen", "zset": "zcard", "stream": "xlen"}
MAX_HASH_METRICS = 100  # distinct metrics one check may derive from unmapped hash fields
SOURCE = "key checks"  # what holds the checks' names in the exposition


def _number(raw: Any) -> float | None:
    """A finite number from a Redis reply, or None."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _field_metric(metric: str, field: str) -> str | None:
    """`<metric>_<field>` with the field in snake_case, or None if promtool would object."""
    suffix = re.sub(r"[^a-z0-9_]", "_", re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", field).lower())
    name = f"{metric}_{suffix}"
    return None if not suffix or metric_name_problem(name) else name


@dataclass
class _Found:
    """One check's keys on this scrape."""

    keys: dict[bytes, tuple[str, ...]] = field(default_factory=dict)  # key → capture values
    skipped: int = 0
    truncated: bool = False


class _Output:
    """The families of one scrape, with the reasons values were not exported. `claim` holds a
    family's names in the exposition (None) or says why not."""

    def __init__(self, claim: Callable[[str], str | None]) -> None:
        self.claim = claim
        self.families: dict[str, tuple[str, tuple[str, ...], dict[tuple[str, ...], float]]] = {}
        self.skipped: dict[tuple[str, str], int] = {}
        self.derived: dict[str, set[str]] = {}
        self.refused: set[str] = set()

    def skip(self, check: KeyCheck, reason: str) -> None:
        self.skipped[(check.id, reason)] = self.skipped.get((check.id, reason), 0) + 1

    def add(self, check: KeyCheck, name: str, help_text: str, labels: dict[str, str],
            value: float, derived: bool = False) -> None:
        """One sample; `derived` names (from hash fields) are bounded per check."""
        if derived:
            names = self.derived.setdefault(check.id, set())
            if name not in names and len(names) >= MAX_HASH_METRICS:
                self.skip(check, "too_many_fields")
                return
            names.add(name)
        if name not in self.families and (name in self.refused or self.claim(name)):
            self.refused.add(name)  # another family exposes it: never twice in one scrape
            self.skip(check, "name_collision")
            return
        _, labelnames, series = self.families.setdefault(name, (help_text, tuple(labels), {}))
        key = tuple(labels.values())
        if labelnames != tuple(labels):
            self.skip(check, "label_conflict")  # two checks share a name with other labels
        elif key in series:
            self.skip(check, "duplicate")
        else:
            series[key] = value

    def metrics(self) -> Iterator[Metric]:
        for name, (help_text, labelnames, series) in self.families.items():
            family = GaugeMetricFamily(name, help_text, labels=list(labelnames))
            for values, number in series.items():
                family.add_metric(list(values), number)
            yield family


@register("redis_state", True, "state kept in Redis, read by the configured key checks")
class RedisStateCollector:
    """Runs the key checks of `config.key_checks` against `config.redis_url` on each scrape."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.checks = tuple(settings.key_checks)
        self.names = settings.names
        self._lock = threading.Lock()
        self._reserved: frozenset[str] = frozenset()  # held from `use` on, found or not
        self._exported: set[str] = set()  # names the last scrape yielded
        self.max_label_length = settings.max_label_length
        # Both well under the collector deadline: a hung Redis fails this collector fast.
        self.budget = settings.timeout / 2
        timeout = settings.timeout / 4
        self.client = redis_client(settings.redis_url, timeout=timeout, connect_timeout=timeout)

    def use(self, checks: Sequence[KeyCheck]) -> None:
        """Run `checks` from the next scrape on (start-up, SIGHUP). Their configured names are
        held in the exposition from now on, so no record can take one before its key appears;
        ConfigError, and nothing changes, when another family exposes one already."""
        reserved = {family.name: family.type for family in self._families(checks)}
        reserved.update((check.metric, "gauge") for check in checks)  # read from any key type
        problem = self.names.replace(SOURCE, reserved.items())
        if problem:
            raise ConfigError("key_checks", problem)
        with self._lock:
            self.checks = tuple(checks)
            self._reserved = frozenset(reserved)
            self._exported = set()

    def _claim(self, name: str) -> str | None:
        return self.names.claim(name, "gauge", SOURCE)

    def _release_absent(self, exported: set[str]) -> None:
        """Give up the derived names this scrape did not yield (their keys or fields went)."""
        with self._lock:
            for name in self._exported - exported - self._reserved:
                self.names.release(name, "gauge", SOURCE)
            self._exported = exported

    def describe(self) -> Iterator[Metric]:
        return self._families(self.checks)

    def _families(self, checks: Sequence[KeyCheck]) -> Iterator[Metric]:
        """The families known before reading Redis: the checks' configured names, and health."""
        names = {name: check.help for check in checks for name in check.static_names()}
        for name, help_text in names.items():
            yield GaugeMetricFamily(name, help_text)
        yield from self._health()

    def collect(self) -> Iterator[Metric]:
        deadline = time.monotonic() + self.budget
        found = {check: _Found() for check in self.checks}
        for check in self.checks:
            if check.key is not None:
                found[check].keys[check.key.encode()] = ()
        self._scan([c for c in self.checks if c.pattern is not None], found, deadline)

        pending = [(check, key, captures) for check, result in found.items()
                   for key, captures in result.keys.items()]
        types = self._pipeline([("type", key) for _, key, _ in pending], deadline)
        out = _Output(self._claim)
        read_keys = {check: 0 for check in self.checks}
        reads, readable = [], []
        for (check, key, captures), kind in zip(pending, map(_text, types)):
            if kind == "none":
                continue  # vanished or never there: no series
            read_keys[check] += 1
            labels = dict(zip(check.label_names(), captures + tuple(v for _, v in check.labels)))
            command = self._read_command(check, key, kind)
            if command is None:
                out.skip(check, "wrong_type")
            elif any(len(v) > self.max_label_length for v in captures):
                out.skip(check, "bad_label")
            else:
                reads.append(command)
                readable.append((check, kind, labels))
        for (check, kind, labels), reply in zip(readable, self._pipeline(reads, deadline)):
            if isinstance(reply, redis.ResponseError):
                out.skip(check, "wrong_type")  # the key changed type between TYPE and the read
            else:
                self._export(check, kind, labels, reply, out)

        keys, over, truncated, skipped = self._health()
        for check, result in found.items():
            keys.add_metric([check.id], read_keys[check])
            if check.pattern is not None:
                over.add_metric([check.id], result.skipped)
                truncated.add_metric([check.id], 1 if result.truncated else 0)
        for (check_id, reason), count in sorted(out.skipped.items()):
            skipped.add_metric([check_id, reason], count)
        self._release_absent(set(out.families))
        yield from out.metrics()
        yield from (keys, over, truncated, skipped)

    def _scan(self, checks: list[KeyCheck], found: dict[KeyCheck, _Found],
              deadline: float) -> None:
        """Walk every pattern with SCAN, the patterns side by side in one pipeline per round."""
        cursors = {check: 0 for check in checks}
        calls = 0
        while cursors:
            calls += 1
            active = list(cursors)
            replies = self._pipeline(
                [("scan", cursors[c], c.glob, c.scan_count, c.type) for c in active], deadline)
            for check, (cursor, keys) in zip(active, replies):
                result = found[check]
                assert check.regex is not None  # a pattern check has one
                for key in keys:
                    match = check.regex.fullmatch(_text(key))
                    if match is None or key in result.keys:
                        continue
                    if len(result.keys) < check.max_keys:
                        result.keys[key] = match.groups()
                    else:
                        result.skipped += 1  # SCAN may repeat a key: a bound, not exact
                cursors[check] = int(cursor)
                if cursors[check] == 0:
                    del cursors[check]
                elif calls >= check.max_scan_calls:
                    result.truncated = True
                    del cursors[check]

    def _pipeline(self, commands: list[tuple], deadline: float) -> list[Any]:
        """Run commands in one round trip; raise once the scrape's time budget is spent."""
        if not commands:
            return []
        if time.monotonic() > deadline:
            raise TimeoutError(f"key checks ran past their {self.budget:.2f}s budget")
        pipe = self.client.pipeline(transaction=False)
        for name, *args in commands:
            if name == "scan":
                cursor, match, count, kind = args
                pipe.scan(cursor, match=match, count=count, _type=kind)
            else:
                getattr(pipe, name)(*args)
        return pipe.execute(raise_on_error=False)

    @staticmethod
    def _read_command(check: KeyCheck, key: bytes, kind: str) -> tuple | None:
        if check.type is not None and kind != check.type:
            return None
        if kind == "hash":
            if check.label_field is not None:
                return ("hget", key, check.label_field)
            if check.fields is not None:
                return ("hmget", key, list(check.fields))
            return ("hgetall", key)
        if kind in LENGTH:
            return (LENGTH[kind], key)
        if kind == "string":
            return ("get", key)
        return None  # a module type (JSON, time series …)

    def _export(self, check: KeyCheck, kind: str, labels: dict[str, str], reply: Any,
                out: _Output) -> None:
        if kind != "hash":
            number = _number(reply)
            if number is None:
                out.skip(check, "non_numeric")
            else:
                out.add(check, check.metric, check.help, labels, number * check.scale)
        elif check.label_field is not None:
            if reply is None:
                return  # field absent: no series
            status = _text(reply)
            if not status or len(status) > self.max_label_length:
                out.skip(check, "bad_label")
            else:
                out.add(check, check.metric, check.help,
                        {**labels, check.label_field: status}, 1.0)
        elif check.fields is not None:
            for rule, raw in zip(check.fields.values(), reply):
                if raw is None:
                    continue  # field absent: no series
                number = _number(raw)
                if number is None:
                    out.skip(check, "non_numeric")
                else:
                    out.add(check, f"{check.metric}_{rule.suffix}", rule.help or check.help,
                            labels, number * rule.scale)
        else:
            for raw_name, raw in reply.items():
                number = _number(raw)
                name = _field_metric(check.metric, _text(raw_name))
                if number is None:
                    out.skip(check, "non_numeric")
                elif name is None:
                    out.skip(check, "bad_name")
                else:
                    out.add(check, name, f"{check.help} Field {_text(raw_name)}.", labels,
                            number * check.scale, derived=True)

    @staticmethod
    def _health() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                           GaugeMetricFamily]:
        """The checks' own health: keys found, keys over the bound, truncated scans, skips."""
        return (GaugeMetricFamily("agent_exporter_key_check_keys",
                                  "Keys the key check found on the last scrape.",
                                  labels=["check"]),
                GaugeMetricFamily("agent_exporter_key_check_keys_skipped",
                                  "Keys matching the check's pattern beyond its max_keys on the "
                                  "last scrape, not read.", labels=["check"]),
                GaugeMetricFamily("agent_exporter_key_check_scan_truncated",
                                  "1 if the check's SCAN stopped at max_scan_calls before "
                                  "walking the whole keyspace on the last scrape.",
                                  labels=["check"]),
                GaugeMetricFamily("agent_exporter_key_check_values_skipped",
                                  "Values the check read but did not export on the last scrape, "
                                  "by reason.", labels=["check", "reason"]))
