"""Generic records (`events:metrics`): seed 004's {metric_name, value, unit, tags, …} record.

Without a mapping a record is a gauge named `metric_name` with its tags as labels; the first
record of a name fixes its label names. A mapping in the config (`metrics:`) can rename it, make
it a counter (value = increment) or a histogram (value = one observation), scale it (percent →
ratio), keep only some tags, or drop it. Users add their own events here without code.

Where a record comes from stays on it: the enrichment fields named by `origin_labels` (by default
hostname and environment) become labels, so the same record from two hosts is two series. A name
the exposition already holds (a built-in family, a collector's, a key check's) is refused with
the holder named, as is any family the store cannot expose (exporter/store.py): the record is
counted invalid, never exported.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from ..events import Invalid, check_label, number, raw
from ..names import RECORDS
from ..store import Family, Refused
from ..validation import METRIC_NAME, metric_name_problem
from .base import Context
from .mappings import Mapping


class GenericRecords:
    name = "metrics"

    def __init__(self, ctx: Context, mappings: Sequence[Mapping], max_metrics: int,
                 origin_labels: Sequence[str] = ()) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.limit = ctx.max_label_length
        self.max_metrics = max_metrics
        self.origin = tuple(origin_labels)
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
        if rule.type != "gauge" and value < 0:  # OpenMetrics has no negative histogram _sum
            raise Invalid("negative", f"{rule.type} {name} takes no negative value ({value})")

        tags = raw(event, "tags") or {}
        if not isinstance(tags, dict):
            raise Invalid("bad_type", "tags must be an object")
        if len(tags) > self.store.max_labels:
            raise Invalid("too_many_labels", f"{len(tags)} tags (max_labels {self.store.max_labels})")
        tag_names = rule.labels if rule.labels is not None else tuple(sorted(tags))
        clash = next((tag for tag in tag_names if tag in self.origin), None)
        if clash is not None:
            raise Invalid("duplicate_label", f"tag {clash} is also an origin label (origin_labels)")
        values = [self._label(field, event.get(field, "")) for field in self.origin]
        values += [self._label(tag, tags.get(tag, "")) for tag in tag_names]
        labelnames = self.origin + tag_names

        family = self.store.families.get(name)
        if (family is None or family.source != RECORDS or family.kind != rule.type
                or family.labelnames != labelnames):
            family = self._family(name, rule, labelnames, metric_name)
        key = tuple(values)
        if family.kind == "gauge":
            family.set(key, value)
        elif family.kind == "counter":
            family.inc(key, value)
        else:
            family.observe(key, value)

    def _label(self, name: str, value: Any) -> str:
        """A tag's or origin field's value as label text (numbers and booleans as JSON has
        them)."""
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = repr(value)
        elif not isinstance(value, str):
            raise Invalid("bad_type", f"{name} must be a string or number")
        check_label(name, value, self.limit)
        return value

    def _family(self, name: str, rule: Mapping, labelnames: tuple[str, ...],
                metric_name: str) -> Family:
        """The family for a record, made on its first record; Invalid when the store refuses
        (a built-in's name: metric_name_collision, naming it)."""
        if name not in self.store.families:
            problem = metric_name_problem(name, rule.type)
            if problem:
                raise Invalid("bad_metric_name", problem)
            count = sum(1 for f in self.store.families.values() if f.source == RECORDS)
            if count >= self.max_metrics:
                raise Invalid("too_many_metrics",
                              f"{count} generic metrics already (max_generic_metrics)")
        help_text = rule.help or f"Seed-004 metric record {metric_name} from events:metrics."
        try:
            return self.ctx.family(name, rule.type, help_text, labelnames, rule.buckets,
                                   source=RECORDS)
        except Refused as exc:
            raise Invalid(exc.reason, str(exc)) from None
