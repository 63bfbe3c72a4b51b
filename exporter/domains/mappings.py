"""The `metrics:` and `origin_labels:` config sections: how seed-004 records on `events:metrics`
become metrics.

A mapping matches record names by glob and can rename the record, make it a counter (value =
increment) or a histogram (value = one observation), scale it (percent → ratio), keep only some
tags, or drop it. `origin_labels` names the enrichment fields seed 004 adds to every record
(collector, hostname, environment, version) that become labels. Only the generic-records domain
is handed these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..validation import (
    ConfigError,
    expect,
    expect_mapping,
    items,
    label_name_problem,
    metric_name_problem,
    one_of,
)

KINDS = ("gauge", "counter", "histogram")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Seed 004's enrichment of every record. hostname and environment tell records of one name
# apart; collector follows from the name (one collector sends it) and version changes with every
# release, which would start new series on each deployment: those two are off by default.
ORIGIN_FIELDS = ("collector", "hostname", "environment", "version")
DEFAULT_ORIGIN_LABELS = ("hostname", "environment")


@dataclass(frozen=True)
class Mapping:
    match: str
    name: str | None = None
    type: str = "gauge"
    help: str | None = None
    scale: float = 1.0
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    labels: tuple[str, ...] | None = None
    drop: bool = False


def _buckets(value: Any, key: str, origin: str) -> tuple[float, ...]:
    expect(value, list, key, origin)
    bounds = tuple(float(expect(b, (int, float), key, origin)) for b in value)
    finite = [b for b in bounds if b != math.inf]
    if not finite:
        raise ConfigError(key, "needs at least one finite bucket bound", origin)
    if finite[0] < 0:  # observations are never negative: OpenMetrics has no negative _sum
        raise ConfigError(key, f"bounds must not be negative, got {list(value)}", origin)
    if sorted(set(finite)) != finite:
        raise ConfigError(key, f"bounds must increase strictly, got {list(value)}", origin)
    return tuple(finite)


def parse_one(item: Any, where: str, origin: str) -> Mapping:
    expect_mapping(item, Mapping.__dataclass_fields__, where, origin)
    if "match" not in item:
        raise ConfigError(f"{where}.match", "required", origin)
    out: dict[str, Any] = {"match": expect(item["match"], str, f"{where}.match", origin)}
    kind = item.get("type", "gauge")
    if kind not in KINDS:
        raise ConfigError(f"{where}.type", f"expected one of {', '.join(KINDS)}", origin)
    out["type"] = kind
    if "name" in item:
        name = expect(item["name"], str, f"{where}.name", origin)
        exposed = name + "_total" if kind == "counter" and not name.endswith("_total") else name
        problem = metric_name_problem(exposed, kind)
        if problem:
            raise ConfigError(f"{where}.name", problem, origin)
        out["name"] = name
    if "scale" in item:
        out["scale"] = float(expect(item["scale"], (int, float), f"{where}.scale", origin))
    if "drop" in item:
        out["drop"] = expect(item["drop"], bool, f"{where}.drop", origin)
    if "help" in item:
        out["help"] = expect(item["help"], str, f"{where}.help", origin)
        if not out["help"].strip():
            raise ConfigError(f"{where}.help", "must not be empty (promtool wants help text)",
                              origin)
    if "buckets" in item:
        out["buckets"] = _buckets(item["buckets"], f"{where}.buckets", origin)
    if item.get("labels") is not None:
        labels = expect(item["labels"], list, f"{where}.labels", origin)
        for name in labels:
            problem = (label_name_problem(name, kind) if isinstance(name, str)
                       else f"{name!r} is not a string")
            if problem:
                raise ConfigError(f"{where}.labels", problem, origin)
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{where}.labels", f"label names repeat: {labels}", origin)
        out["labels"] = tuple(labels)
    return Mapping(**out)


def parse_mappings(value: Any, key: str, origin: str) -> tuple[Mapping, ...]:
    """The `metrics:` config section: a list of mappings, checked key by key."""
    expect(value, list, key, origin)
    return tuple(parse_one(item, f"{key}[{i}]", origin) for i, item in enumerate(value))


def parse_origin_labels(value: Any, key: str, origin: str) -> tuple[str, ...]:
    """The `origin_labels:` config section: which enrichment fields become labels."""
    fields = tuple(items(value, key, origin, one_of(*ORIGIN_FIELDS)))
    if len(set(fields)) != len(fields):
        raise ConfigError(key, f"fields repeat: {list(fields)}", origin)
    return fields


def check_origin_labels(mappings: tuple[Mapping, ...], origin_labels: tuple[str, ...],
                        key: str, origin: str) -> None:
    """A mapping may not keep a tag named like an origin label: the series would have the
    label twice."""
    for i, mapping in enumerate(mappings):
        twice = sorted(set(mapping.labels or ()) & set(origin_labels))
        if twice:
            raise ConfigError(f"{key}[{i}].labels", f"{', '.join(twice)} is an origin label "
                                                    "(origin_labels)", origin)
