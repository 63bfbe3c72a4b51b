"""Key checks: the `key_checks:` config section, after redis_exporter's check-keys.

A key check names one key, or a pattern such as `metrics:agent:{agent}:workload` whose
`{captures}` become labels, and says which gauge(s) the key becomes (see docs/collectors.md). The
seeds' own keys are checked by default (`DEFAULT_KEY_CHECKS`); a user's checks add to, replace or
switch off those. The scraper that runs them is exporter/collectors/redis_state.py.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..validation import (
    ConfigError,
    expect,
    expect_mapping,
    label_name_problem,
    metric_name_problem,
    positive_int,
)

CAPTURE = re.compile(r"\{([^{}]*)\}")
GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
TYPES = ("hash", "set", "list", "zset", "stream", "string")
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
    """A gauge name: valid, not the exporter's own, clean for promtool (no _total/_count/…)."""
    expect(value, str, key, origin)
    problem = metric_name_problem(value)
    if problem:
        raise ConfigError(key, problem, origin)
    return value


def _help(value: Any, key: str, origin: str) -> str:
    expect(value, str, key, origin)
    if not value.strip():
        raise ConfigError(key, "must not be empty (promtool wants help text)", origin)
    return value


def _label_name(value: Any, key: str, origin: str) -> str:
    expect(value, str, key, origin)
    problem = label_name_problem(value)
    if problem:
        raise ConfigError(key, problem, origin)
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


def _fields(value: Any, metric: str, key: str, origin: str) -> dict[str, FieldRule]:
    expect(value, dict, key, origin)
    rules = {}
    for name, spec in value.items():
        where = f"{key}.{name}"
        expect(name, str, key, origin)
        if isinstance(spec, str):
            spec = {"name": spec}
        expect_mapping(spec, {"name", "scale", "help"}, where, origin)
        suffix = expect(spec.get("name", name), str, f"{where}.name", origin)
        _metric_name(f"{metric}_{suffix}", f"{where}.name", origin)
        scale = _scale(spec["scale"], f"{where}.scale", origin) if "scale" in spec else 1.0
        help_text = _help(spec["help"], f"{where}.help", origin) if "help" in spec else None
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
                options[name] = positive_int(item[name], f"{where}.{name}", origin)
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
        help=_help(item.get("help", f"Read from Redis {source} {target} at scrape time."),
                   f"{where}.help", origin),
        key=target if source == "key" else None,
        pattern=target if source == "pattern" else None,
        type=kind,
        fields=_fields(item["fields"], metric, f"{where}.fields", origin) if "fields" in item else None,
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


DEFAULT_KEY_CHECKS: tuple[KeyCheck, ...] = tuple(
    check for _, check in _parse_list(_BUILTIN, "DEFAULT_KEY_CHECKS", "built-in")
    if check is not None)


def parse_key_checks(value: Any, key: str, origin: str) -> tuple[KeyCheck, ...]:
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
    return tuple(check for check in merged if check is not None)
