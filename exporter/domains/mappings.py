"""The `metrics:` config section: how seed-004 records on `events:metrics` become metrics.

A mapping matches record names by glob and can rename the record, make it a counter (value =
increment) or a histogram (value = one observation), scale it (percent → ratio), keep only some
tags, or drop it. Only the generic-records domain is handed these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..validation import (
    ConfigError,
    expect,
    expect_mapping,
    label_name_problem,
    metric_name_problem,
)

KINDS = ("gauge", "counter", "histogram")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


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
        problem = metric_name_problem(name)
        if problem:
            raise ConfigError(f"{where}.name", problem, origin)
        out["name"] = name
    if "scale" in item:
        out["scale"] = float(expect(item["scale"], (int, float), f"{where}.scale", origin))
    if "drop" in item:
        out["drop"] = expect(item["drop"], bool, f"{where}.drop", origin)
    if "help" in item:
        out["help"] = expect(item["help"], str, f"{where}.help", origin)
    if "buckets" in item:
        out["buckets"] = _buckets(item["buckets"], f"{where}.buckets", origin)
    if item.get("labels") is not None:
        labels = expect(item["labels"], list, f"{where}.labels", origin)
        for name in labels:
            problem = (label_name_problem(name, kind) if isinstance(name, str)
                       else f"{name!r} is not a string")
            if problem:
                raise ConfigError(f"{where}.labels", problem, origin)
        out["labels"] = tuple(labels)
    return Mapping(**out)


def parse_mappings(value: Any, key: str, origin: str) -> tuple[Mapping, ...]:
    """The `metrics:` config section: a list of mappings, checked key by key."""
    expect(value, list, key, origin)
    return tuple(parse_one(item, f"{key}[{i}]", origin) for i, item in enumerate(value))
