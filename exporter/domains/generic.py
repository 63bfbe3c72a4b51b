"""Generic records (`events:metrics`): seed 004's {metric_name, value, unit, tags, …} record.

Without a mapping a record is a gauge named `metric_name` with its tags as labels; the first
record of a name fixes its label names. A mapping in the config (`metrics:`) can rename it, make
it a counter (value = increment) or a histogram (value = one observation), scale it (percent →
ratio), keep only some tags, or drop it. Users add their own events here without code.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Config, ConfigError, expect, expect_mapping
from ..events import Invalid, check_label, number, raw
from ..store import Family, Store

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
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


def parse_mappings(value: Any, key: str, origin: str) -> list[Mapping]:
    """The `metrics:` config section: a list of mappings, checked key by key."""
    expect(value, list, key, origin)
    mappings = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        expect_mapping(item, set(Mapping.__dataclass_fields__), where, origin)
        if "match" not in item:
            raise ConfigError(f"{where}.match", "required", origin)
        expect(item["match"], str, f"{where}.match", origin)
        if "name" in item and not METRIC_NAME.match(str(item["name"])):
            raise ConfigError(f"{where}.name", f"not a valid metric name: {item['name']!r}", origin)
        if item.get("type", "gauge") not in KINDS:
            raise ConfigError(f"{where}.type", f"expected one of {', '.join(KINDS)}", origin)
        if "scale" in item:
            expect(item["scale"], (int, float), f"{where}.scale", origin)
        if "drop" in item:
            expect(item["drop"], bool, f"{where}.drop", origin)
        if "help" in item:
            expect(item["help"], str, f"{where}.help", origin)
        buckets = item.get("buckets", DEFAULT_BUCKETS)
        expect(buckets, (list, tuple), f"{where}.buckets", origin)
        for b in buckets:
            expect(b, (int, float), f"{where}.buckets", origin)
        labels = item.get("labels")
        if labels is not None:
            expect(labels, list, f"{where}.labels", origin)
            for name in labels:
                if not isinstance(name, str) or not LABEL_NAME.match(name):
                    raise ConfigError(f"{where}.labels", f"not a valid label name: {name!r}", origin)
        mappings.append(Mapping(match=item["match"], name=item.get("name"),
                                type=item.get("type", "gauge"), help=item.get("help"),
                                scale=float(item.get("scale", 1.0)),
                                buckets=tuple(float(b) for b in buckets),
                                labels=tuple(labels) if labels is not None else None,
                                drop=item.get("drop", False)))
    return mappings


class GenericRecords:
    name = "metrics"

    def __init__(self, store: Store, config: Config, reserved: Callable[[str], bool]) -> None:
        self.store = store
        self.config = config
        self.limit = config.max_label_length
        self.reserved = reserved
        self.mappings: list[Mapping] = config.metrics
        self._rules: dict[str, Mapping | None] = {}

    def reload(self, mappings: list[Mapping]) -> None:
        """New mappings apply to metric names not seen yet (a family keeps its shape)."""
        self.mappings = mappings
        self._rules.clear()

    def _rule(self, metric_name: str) -> Mapping | None:
        if metric_name in self._rules:
            return self._rules[metric_name]
        rule = next((m for m in self.mappings if fnmatch.fnmatchcase(metric_name, m.match)), None)
        if len(self._rules) < self.config.max_generic_metrics * 4:
            self._rules[metric_name] = rule
        return rule

    def handle(self, event: dict, channel: str) -> None:
        metric_name = raw(event, "metric_name")
        if metric_name is None:
            raise Invalid("missing_field", "metric_name is required")
        if not isinstance(metric_name, str) or not METRIC_NAME.match(metric_name):
            raise Invalid("bad_metric_name", f"metric_name {str(metric_name)[:80]!r} is not valid")
        value = number(event, "value", required=True)
        rule = self._rule(metric_name)
        if rule is not None and rule.drop:
            return
        rule = rule or Mapping(match=metric_name)
        name = rule.name or metric_name
        if rule.type == "counter" and not name.endswith("_total"):
            name += "_total"
        value *= rule.scale
        if rule.type == "counter" and value < 0:
            raise Invalid("negative", f"counter {name} cannot decrease (value {value})")

        tags = raw(event, "tags") or {}
        if not isinstance(tags, dict):
            raise Invalid("bad_type", "tags must be an object")
        names = rule.labels if rule.labels is not None else tuple(sorted(tags))
        values = []
        for tag in names:
            if not LABEL_NAME.match(tag) or tag.startswith("__"):
                raise Invalid("bad_label_name", f"tag {tag[:80]!r} is not a valid label name")
            tag_value = tags.get(tag, "")
            if isinstance(tag_value, bool):
                tag_value = "true" if tag_value else "false"
            elif isinstance(tag_value, (int, float)):
                tag_value = repr(tag_value)
            elif not isinstance(tag_value, str):
                raise Invalid("bad_type", f"tag {tag} must be a string or number")
            check_label(tag, tag_value, self.limit)
            values.append(tag_value)

        family = self.store.families.get(name)
        if family is None:
            family = self._create(name, rule, names, metric_name)
        elif not family.dynamic:
            raise Invalid("metric_name_collision", f"{name} is a built-in metric name")
        elif family.labelnames != names:
            raise Invalid("label_mismatch",
                          f"{name} has labels {list(family.labelnames)}, record has {list(names)}")

        key = tuple(values)
        if family.kind == "gauge":
            family.set(key, value)
        elif family.kind == "counter":
            family.inc(key, value)
        else:
            family.observe(key, value)

    def _create(self, name: str, rule: Mapping, labelnames: tuple[str, ...],
                metric_name: str) -> Family:
        if self.reserved(name):
            raise Invalid("metric_name_collision", f"{name} is a built-in metric name")
        count = sum(1 for f in self.store.families.values() if f.dynamic)
        if count >= self.config.max_generic_metrics:
            raise Invalid("too_many_metrics",
                          f"{count} generic metrics already (max_generic_metrics)")
        help_text = rule.help or f"Seed-004 metric record {metric_name} from events:metrics."
        family = self.store.family(name, rule.type, help_text, labelnames, rule.buckets,
                                   budget=self.config.series_budgets.get(name),
                                   ttl=self.config.series_ttls.get(name))
        family.dynamic = True
        return family
