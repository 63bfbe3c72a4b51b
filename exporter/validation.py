"""Checks for configuration values and for the names the exporter exposes.

A leaf module: it imports nothing from the package, so every other module (config, components,
the store) can use it without an import cycle. Config checks raise `ConfigError` naming the key
and where it came from; name checks return a reason (or None) so callers can raise their own
error type (events raise `Invalid`, configs raise `ConfigError`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

# Names an exporter may expose: Prometheus' rules without colons (those belong to recording rules).
METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Families of these prefixes are the exporter's own or prometheus-client's standard collectors.
RESERVED_PREFIXES = ("agent_exporter_", "process_", "python_")
# What a family of each kind adds to its name in the exposition (text format and OpenMetrics).
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}
# Suffixes promtool rejects on a gauge, because they mark another kind's samples.
KIND_SUFFIXES = ("_total", "_count", "_sum", "_bucket", "_created")
# Label names the exposition gives a meaning of its own (and `__*`, reserved by Prometheus).
RESERVED_LABELS = {"le": "histogram", "quantile": "summary"}
# promtool's naming lint (client_golang's promlint), which `promtool check metrics` applies.
CAMEL_CASE = re.compile(r"[a-z][A-Z]")
TYPE_WORDS = ("counter", "gauge", "summary", "histogram")  # gauge_histogram contains _gauge_
UNIT_ABBREVIATIONS = ("s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h",
                      "d")
BASE_UNITS = {"amperes": "amperes", "bytes": "bytes", "celsius": "celsius", "grams": "grams",
              "joules": "joules", "kelvin": "kelvin", "meters": "meters", "metres": "metres",
              "seconds": "seconds", "volts": "volts", "minutes": "seconds", "hours": "seconds",
              "days": "seconds", "weeks": "seconds", "kelvins": "kelvin",
              "fahrenheit": "celsius", "rankine": "celsius", "inches": "meters",
              "yards": "meters", "miles": "meters", "bits": "bytes", "calories": "joules",
              "pounds": "grams", "ounces": "grams"}
UNIT_PREFIXES = ("pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo",
                 "kibi", "mega", "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi")


class ConfigError(Exception):
    """A configuration problem; the message names the key and where it came from."""

    def __init__(self, key: str, problem: str, origin: str = "config") -> None:
        super().__init__(f"{origin}: {key}: {problem}")
        self.key = key


# -- configuration values -----------------------------------------------------------------------

_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "a mapping"}


def kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def expect(value: Any, kind: type | tuple[type, ...], key: str, origin: str) -> Any:
    """Check a value's type (bool is not a number here, NaN and infinities are no numbers)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(key, f"expected {kind_name(kinds)}, got a boolean", origin)
    if not isinstance(value, kinds):
        raise ConfigError(key, f"expected {kind_name(kinds)}, got {type(value).__name__}", origin)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {value}", origin)
    return value


def expect_mapping(value: Any, allowed: Iterable[str], key: str, origin: str) -> dict[str, Any]:
    """A mapping whose keys are all in `allowed`."""
    expect(value, dict, key, origin)
    known = set(allowed)
    for name in value:
        if name not in known:
            raise ConfigError(f"{key}.{name}" if key else str(name),
                              f"unknown key (known: {', '.join(sorted(known))})", origin)
    return value


def number(value: Any, key: str, origin: str, minimum: float | None = None,
           above: float | None = None, integer: bool = False) -> float:
    """A finite number (an integer if asked) `>= minimum` and `> above`."""
    expect(value, int if integer else (int, float), key, origin)
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be at least {minimum:g}, got {value}", origin)
    if above is not None and value <= above:
        raise ConfigError(key, f"must be greater than {above:g}, got {value}", origin)
    return value


def positive(value: Any, key: str, origin: str) -> float:
    return number(value, key, origin, above=0)


def not_negative(value: Any, key: str, origin: str) -> float:
    return number(value, key, origin, minimum=0)


def positive_int(value: Any, key: str, origin: str) -> int:
    return int(number(value, key, origin, above=0, integer=True))


def one_of(*choices: str) -> Callable[[Any, str, str], str]:
    def check(value: Any, key: str, origin: str) -> str:
        if value not in choices:
            raise ConfigError(key, f"expected one of {', '.join(choices)}, got {value!r}", origin)
        return value
    return check


def listen_address(value: str, key: str, origin: str) -> str:
    """HOST:PORT, HOST may be empty (all interfaces) or a bracketed IPv6 address."""
    _, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key, f"expected HOST:PORT, got {value!r}", origin)
    return value


def items(value: Any, key: str, origin: str,
          check: Callable[[Any, str, str], T]) -> list[T]:
    """A list, each element checked as `key[i]`."""
    expect(value, list, key, origin)
    return [check(item, f"{key}[{i}]", origin) for i, item in enumerate(value)]


# -- exposed names ------------------------------------------------------------------------------

def name_problem(name: str, kind: str) -> str | None:
    """Why a family `name` of `kind` would break a scrape or fail `promtool check metrics`, or
    None. Every family the exporter exposes passes this: its own, the records' and the key
    checks'."""
    if not METRIC_NAME.match(name):
        return f"{name[:80]!r} is not a valid metric name ([a-zA-Z_][a-zA-Z0-9_]*)"
    if CAMEL_CASE.search(name):
        return f"{name!r}: metric names are snake_case, not camelCase"
    if kind == "counter" and not name.endswith("_total"):
        return f"{name!r}: a counter's name ends in _total"
    if kind != "counter" and name.endswith("_total"):
        return f"{name!r}: only a counter's name ends in _total"
    if kind in ("gauge", "unknown") and name.endswith(KIND_SUFFIXES):
        return f"{name!r}: a {kind} may not end in {', '.join(KIND_SUFFIXES)} (another kind's samples)"
    for word in name.lower().split("_")[1:]:
        if word in TYPE_WORDS:
            return f"{name!r}: the name should not include its type ({word})"
        if word in UNIT_ABBREVIATIONS:
            return f"{name!r}: write units out ({word!r} is an abbreviation)"
    unit = next((word for word in name.split("_") if _base_unit(word)), None)
    if unit is not None and _base_unit(unit) != unit:
        return f"{name!r}: use the base unit {_base_unit(unit)!r}, not {unit!r}"
    return None


def _base_unit(word: str) -> str | None:
    """The base unit of a unit word ("milliseconds" → "seconds"), or None for other words."""
    if word in BASE_UNITS:
        return BASE_UNITS[word]
    prefix = next((p for p in UNIT_PREFIXES if word.startswith(p) and word[len(p):] in BASE_UNITS),
                  None)
    return BASE_UNITS[word[len(prefix):]] if prefix else None


def metric_name_problem(name: str, kind: str = "gauge") -> str | None:
    """Why `name` cannot be the name of a family of `kind` that a user (a config, a record)
    chose, or None: the exposition's rules, and not a prefix of the exporter's own."""
    if name.startswith(RESERVED_PREFIXES):
        return f"{name!r}: the prefixes {', '.join(RESERVED_PREFIXES)} are the exporter's own"
    return name_problem(name, kind)


def label_name_problem(name: str, kind: str = "gauge") -> str | None:
    """Why `name` cannot be a label of a family of `kind`, or None."""
    if not LABEL_NAME.match(name):
        return f"{name[:80]!r} is not a valid label name"
    if name.startswith("__"):
        return f"{name!r}: label names starting with __ are reserved"
    if name in RESERVED_LABELS:
        owner = RESERVED_LABELS[name]
        return (f"{name!r} is reserved in a {kind}" if kind == owner
                else f"{name!r} is reserved for a {owner}'s samples")
    if CAMEL_CASE.search(name):
        return f"{name!r}: label names are snake_case, not camelCase"
    return None


def sample_names(name: str, kind: str) -> tuple[str, ...]:
    """Every name a family exposes: its samples' and its own in both formats (a counter's name
    may carry its `_total`; OpenMetrics names the family without it, and an info without
    `_info`)."""
    base = name
    for suffix in (("_total",) if kind == "counter" else ("_info",) if kind == "info" else ()):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    return tuple(dict.fromkeys((base, *(base + suffix for suffix in SAMPLE_SUFFIXES[kind]))))
