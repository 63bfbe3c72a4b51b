"""Redis-state collector: key checks read at scrape time, after redis_exporter's check-keys.

The seeds keep current state in Redis (a set of active agents, per-agent workload hashes, project
status hashes, the GPU reading a remote host last wrote). A key check names one key, or a pattern
such as `metrics:agent:{agent}:workload` whose `{captures}` become labels, and turns what it finds
into gauges by the key's type: a hash's numeric fields, a set's cardinality, a list's, stream's or
sorted set's length (queue depth), a string's number. A missing key yields no series, not a 0.

Each scrape costs a few round trips whatever the number of checks: the SCANs of all patterns run
side by side, then one pipeline of TYPE for every key found, then one pipeline of reads. Patterns
are walked with SCAN (never KEYS), at most `max_scan_calls` calls of COUNT `scan_count` per check,
and at most `max_keys` keys per check are read; the excess is counted, not exported. The socket
timeout and a time budget for the whole walk stay well under the collector deadline, so a hung
Redis costs this collector its metrics on this scrape, never the scrape.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import Config, ConfigError, expect, expect_mapping
from . import register

METRIC_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
CAPTURE = re.compile(r"\{([^{}]*)\}")
GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket")  # promtool: not for gauges
RESERVED_PREFIX = "agent_exporter_"
TYPES = ("hash", "set", "list", "zset", "stream", "string")
LENGTH = {"set": "scard", "list": "llen", "zset": "zcard", "stream": "xlen"}
MAX_HASH_METRICS = 100  # distinct metrics one check may derive from unmapped hash fields
DEFAULTS = {"max_keys": 1000, "scan_count": 1000, "max_scan_calls": 100}


@dataclass(frozen=True)
class FieldRule:
    """How one hash field is exported: `<metric>_<suffix>`, value × scale."""

    suffix: str
    scale: float
    help: str | None = None


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, a dict key per scrape
class KeyCheck:
    """One parsed `key_checks:` entry (see docs/collectors.md for the options)."""

    id: str  # the `check` label of the health metrics: `name`, else the key or pattern
    metric: str
    help: str
    key: str | None = None
    pattern: str | None = None
    type: str | None = None
    fields: dict[str, FieldRule] | None = None
    label_field: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    scale: float = 1.0
    max_keys: int = DEFAULTS["max_keys"]
    scan_count: int = DEFAULTS["scan_count"]
    max_scan_calls: int = DEFAULTS["max_scan_calls"]
    glob: str = ""  # SCAN MATCH for a pattern
    regex: re.Pattern | None = None  # a pattern's captures
    captures: tuple[str, ...] = ()

    def label_names(self) -> tuple[str, ...]:
        return self.captures + tuple(name for name, _ in self.labels)

    def static_names(self) -> list[str]:
        """The metric names known before reading Redis (an unmapped hash adds its fields')."""
        if self.fields is not None:
            return [f"{self.metric}_{rule.suffix}" for rule in self.fields.values()]
        if self.label_field is not None or self.type not in (None, "hash"):
            return [self.metric]
        return []


# The seeds' keys (seed 000, "Redis-backed metrics" patterns 2-4).
_BUILTIN: list[dict[str, Any]] = [
    {"key": "metrics:agents:active", "type": "set", "metric": "agent_active_agents",
     "help": "Agents in the metrics:agents:active set (agents whose last status was busy)."},
    {"pattern": "metrics:agent:{agent}:workload", "type": "hash", "metric": "agent_workload",
     "help": "Tasks assigned to the agent (current_tasks of metrics:agent:<agent>:workload).",
     "fields": {"current_tasks": "current_tasks"}},
    {"pattern": "metrics:agent:{agent}:performance", "type": "hash",
     "metric": "agent_performance",
     "help": "Numeric field of the agent's metrics:agent:<agent>:performance hash."},
    {"pattern": "context:project:{project}", "type": "hash", "metric": "training_project_status",
     "label_field": "status",
     "help": "Always 1; the status label is the status field of context:project:<project>."},
    {"key": "metrics:gpu:current", "type": "hash", "metric": "gpu_reported",
     "help": "GPU reading a remote host last wrote to metrics:gpu:current (seed pattern 3).",
     "fields": {
         "utilization_percent": {"name": "utilization_ratio", "scale": 0.01,
                                 "help": "GPU utilisation reported through Redis, 0-1."},
         "memory_used_mb": {"name": "memory_used_bytes", "scale": 1048576,
                            "help": "GPU memory in use reported through Redis."},
         "memory_total_mb": {"name": "memory_total_bytes", "scale": 1048576,
                             "help": "GPU memory size reported through Redis."},
         "temperature_celsius": {"name": "temperature_celsius",
                                 "help": "GPU temperature reported through Redis."},
         "power_draw_watts": {"name": "power_watts",
                              "help": "GPU power draw reported through Redis."},
     }},
]


def _metric_name(value: Any, key: str, origin: str) -> str:
    expect(value, str, key, origin)
    if not METRIC_NAME.match(value):
        raise ConfigError(key, f"not a snake_case metric name: {value!r}", origin)
    if value.endswith(RESERVED_SUFFIXES):
        raise ConfigError(key, f"{value!r}: gauges may not end in {', '.join(RESERVED_SUFFIXES)}",
                          origin)
    if value.startswith(RESERVED_PREFIX):
        raise ConfigError(key, f"{value!r}: {RESERVED_PREFIX} is the exporter's own prefix", origin)
    return value


def _label_name(value: Any, key: str, origin: str) -> str:
    expect(value, str, key, origin)
    if not LABEL_NAME.match(value) or value.startswith("__"):
        raise ConfigError(key, f"not a valid label name: {value!r}", origin)
    return value


def _positive_int(value: Any, key: str, origin: str) -> int:
    expect(value, int, key, origin)
    if value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value}", origin)
    return value


def _scale(value: Any, key: str, origin: str) -> float:
    expect(value, (int, float), key, origin)
    if not math.isfinite(value) or value == 0:
        raise ConfigError(key, f"must be a finite non-zero number, got {value}", origin)
    return float(value)


def _compile_pattern(pattern: str, key: str,
                     origin: str) -> tuple[str, re.Pattern, tuple[str, ...]]:
    """`a:{x}:b` → SCAN glob `a:*:b`, regex `a:(?P<x>[^:]+):b`, captures ("x",)."""
    parts = CAPTURE.split(pattern)  # literal, capture, literal, …, literal
    literals, captures = parts[0::2], tuple(parts[1::2])
    if not captures:
        raise ConfigError(key, "a pattern needs at least one {capture} (use key: for one key)",
                          origin)
    for i, name in enumerate(captures):
        _label_name(name, key, origin)
        if name in captures[:i]:
            raise ConfigError(key, f"capture {{{name}}} appears twice", origin)
    if any("{" in text or "}" in text for text in literals):
        raise ConfigError(key, f"unbalanced brace in {pattern!r}", origin)
    glob = "*".join(GLOB_SPECIAL.sub(r"\\\1", text) for text in literals)
    regex = "".join(re.escape(text) + (f"(?P<{name}>[^:]+)" if name else "")
                    for text, name in zip(literals, captures + ("",)))
    return glob, re.compile(regex), captures


def _fields(value: Any, key: str, origin: str) -> dict[str, FieldRule]:
    expect(value, dict, key, origin)
    rules = {}
    for name, spec in value.items():
        where = f"{key}.{name}"
        expect(name, str, key, origin)
        if isinstance(spec, str):
            spec = {"name": spec}
        expect_mapping(spec, {"name", "scale", "help"}, where, origin)
        suffix = spec.get("name", name)
        _metric_name(suffix, f"{where}.name", origin)
        scale = _scale(spec["scale"], f"{where}.scale", origin) if "scale" in spec else 1.0
        help_text = expect(spec["help"], str, f"{where}.help", origin) if "help" in spec else None
        rules[name] = FieldRule(suffix, scale, help_text)
    return rules


ALLOWED = {"name", "key", "pattern", "metric", "help", "type", "fields", "label_field", "labels",
           "scale", "max_keys", "scan_count", "max_scan_calls", "enabled"}


def _parse_one(item: Any, where: str, origin: str) -> tuple[str, KeyCheck | None]:
    """One entry → (its id, the check), or (id, None) for `enabled: false`."""
    expect_mapping(item, ALLOWED, where, origin)
    if ("key" in item) == ("pattern" in item):
        raise ConfigError(where, "needs exactly one of key: or pattern:", origin)
    source = "key" if "key" in item else "pattern"
    target = expect(item[source], str, f"{where}.{source}", origin)
    if not target:
        raise ConfigError(f"{where}.{source}", "must not be empty", origin)
    check_id = expect(item.get("name", target), str, f"{where}.name", origin)
    if not expect(item.get("enabled", True), bool, f"{where}.enabled", origin):
        return check_id, None

    if "metric" not in item:
        raise ConfigError(f"{where}.metric", "required", origin)
    metric = _metric_name(item["metric"], f"{where}.metric", origin)
    kind = item.get("type")
    if kind is not None and kind not in TYPES:
        raise ConfigError(f"{where}.type", f"expected one of {', '.join(TYPES)}, got {kind!r}",
                          origin)
    options: dict[str, Any] = {}
    if source == "pattern":
        glob, regex, captures = _compile_pattern(target, f"{where}.pattern", origin)
        options.update(glob=glob, regex=regex, captures=captures)
        for name in DEFAULTS:
            if name in item:
                options[name] = _positive_int(item[name], f"{where}.{name}", origin)
    else:
        for name in DEFAULTS:
            if name in item:
                raise ConfigError(f"{where}.{name}", "only for pattern: checks", origin)
    for name in ("fields", "label_field"):
        if name in item and kind not in (None, "hash"):
            raise ConfigError(f"{where}.{name}", f"only for hashes, not type {kind}", origin)
    if "fields" in item and "label_field" in item:
        raise ConfigError(f"{where}.label_field", "use either fields: or label_field:", origin)

    labels = item.get("labels", {})
    expect(labels, dict, f"{where}.labels", origin)
    for name, text in labels.items():
        _label_name(name, f"{where}.labels", origin)
        expect(text, str, f"{where}.labels.{name}", origin)
    names = list(options.get("captures", ())) + list(labels)
    if "label_field" in item:
        names.append(_label_name(item["label_field"], f"{where}.label_field", origin))
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.labels", f"label names repeat: {names}", origin)

    check = KeyCheck(
        id=check_id, metric=metric,
        help=expect(item.get("help", f"Read from Redis {source} {target} at scrape time."), str,
                    f"{where}.help", origin),
        key=target if source == "key" else None,
        pattern=target if source == "pattern" else None,
        type=kind,
        fields=_fields(item["fields"], f"{where}.fields", origin) if "fields" in item else None,
        label_field=item.get("label_field"),
        labels=tuple(labels.items()),
        scale=_scale(item["scale"], f"{where}.scale", origin) if "scale" in item else 1.0,
        **options)
    return check_id, check


def _parse_list(value: Any, key: str, origin: str) -> list[tuple[str, KeyCheck | None]]:
    expect(value, list, key, origin)
    parsed: list[tuple[str, KeyCheck | None]] = []
    for i, item in enumerate(value):
        check_id, check = _parse_one(item, f"{key}[{i}]", origin)
        if any(check_id == seen for seen, _ in parsed):
            raise ConfigError(f"{key}[{i}]", f"a second check named {check_id!r} (set name:)",
                              origin)
        parsed.append((check_id, check))
    return parsed


DEFAULT_KEY_CHECKS: list[KeyCheck] = [check for _, check in
                                      _parse_list(_BUILTIN, "DEFAULT_KEY_CHECKS", "built-in")
                                      if check is not None]


def parse_key_checks(value: Any, key: str, origin: str) -> list[KeyCheck]:
    """The `key_checks:` section: checks added to the built-in ones. An entry with the same name
    (or key / pattern) as a built-in check replaces it; with `enabled: false` it removes it."""
    user = _parse_list(value, key, origin)
    builtin_ids = {check.id for check in DEFAULT_KEY_CHECKS}
    for i, (check_id, check) in enumerate(user):
        if check is None and check_id not in builtin_ids:
            raise ConfigError(f"{key}[{i}].enabled",
                              f"no built-in check {check_id!r} to switch off "
                              f"(built-in: {', '.join(sorted(builtin_ids))})", origin)
    overrides = dict(user)
    merged = [overrides.pop(check.id, check) for check in DEFAULT_KEY_CHECKS]
    merged += overrides.values()
    return [check for check in merged if check is not None]


def _number(raw: Any) -> float | None:
    """A finite number from a Redis reply, or None."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _field_suffix(name: str) -> str | None:
    """A hash field name as a snake_case metric suffix, or None if promtool would object."""
    suffix = re.sub(r"[^a-z0-9_]", "_", re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower())
    return None if not suffix or suffix.endswith(RESERVED_SUFFIXES) else suffix


@dataclass
class _Found:
    """One check's keys on this scrape."""

    keys: dict[bytes, tuple[str, ...]] = field(default_factory=dict)  # key → capture values
    skipped: int = 0
    truncated: bool = False


class _Output:
    """The families of one scrape, with the reasons values were not exported."""

    def __init__(self) -> None:
        self.families: dict[str, tuple[str, tuple[str, ...], dict[tuple[str, ...], float]]] = {}
        self.skipped: dict[tuple[str, str], int] = {}
        self.derived: dict[str, set[str]] = {}

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

    def __init__(self, config: Config) -> None:
        self.checks: list[KeyCheck] = config.key_checks
        self.max_label_length: int = config.max_label_length
        # Both well under the collector deadline: a hung Redis fails this collector fast.
        self.budget = config.collector_timeout_seconds / 2
        timeout = config.collector_timeout_seconds / 4
        self.client = redis.Redis.from_url(config.redis_url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout,
                                           retry=Retry(NoBackoff(), 0))

    def reload(self, config: Config) -> None:
        """SIGHUP: the next scrape runs the new checks."""
        self.checks = config.key_checks

    def describe(self) -> Iterator[Metric]:
        names = {name: check.help for check in self.checks for name in check.static_names()}
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
        out = _Output()
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
                suffix = _field_suffix(_text(raw_name))
                if number is None:
                    out.skip(check, "non_numeric")
                elif suffix is None:
                    out.skip(check, "bad_name")
                else:
                    out.add(check, f"{check.metric}_{suffix}",
                            f"{check.help} Field {_text(raw_name)}.", labels,
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
