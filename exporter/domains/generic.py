"""Generic records (`events:metrics`): seed 004's {metric_name, value, unit, tags, …} record.

Without a mapping a record is a gauge named `metric_name` with its tags as labels; the first
record of a name fixes its label names. A mapping in the config (`metrics:`) can rename it, make
it a counter (value = increment) or a histogram (value = one observation), scale it (percent →
ratio), keep only some tags, or drop it. Users add their own events here without code.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence

from ..events import Invalid, check_label, number, raw
from ..store import Family
from ..validation import METRIC_NAME, label_name_problem
from .base import Context
from .mappings import Mapping


class GenericRecords:
    name = "metrics"

    def __init__(self, ctx: Context, mappings: Sequence[Mapping], max_metrics: int,
                 reserved: Callable[[str], bool]) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.limit = ctx.max_label_length
        self.max_metrics = max_metrics
        self.reserved = reserved
        self.mappings = tuple(mappings)
        self._rules: dict[str, Mapping | None] = {}

    def reload(self, mappings: Sequence[Mapping]) -> None:
        """New mappings apply to metric names not seen yet (a family keeps its shape)."""
        self.mappings = tuple(mappings)
        self._rules.clear()

    def _rule(self, metric_name: str) -> Mapping | None:
        if metric_name in self._rules:
            return self._rules[metric_name]
        rule = next((m for m in self.mappings if fnmatch.fnmatchcase(metric_name, m.match)), None)
        if len(self._rules) < self.max_metrics * 4:
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
            problem = label_name_problem(tag, rule.type)
            if problem:
                raise Invalid("bad_label_name", f"tag {problem}")
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
        if count >= self.max_metrics:
            raise Invalid("too_many_metrics",
                          f"{count} generic metrics already (max_generic_metrics)")
        help_text = rule.help or f"Seed-004 metric record {metric_name} from events:metrics."
        family = self.ctx.family(name, rule.type, help_text, labelnames, rule.buckets)
        family.dynamic = True
        return family
