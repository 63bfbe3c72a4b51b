"""Reading the generated dashboards as Grafana would: their panels, queries and variables.

One home for the tests (static checks and the live query run) and the dashboard benchmark.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.procs import REPO

DASHBOARDS = REPO / "grafana" / "dashboards"
# Grafana variable references: ${name}, ${name:format}, $name and the old [[name]].
VARIABLE_REF = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^\s*label_values\((?:(.*),)?\s*(\w+)\s*\)\s*$", re.DOTALL)
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                      "offset", "and", "or", "unless", "inf", "nan", "atan2"})

Dashboard = dict[str, Any]


def load() -> dict[str, Dashboard]:
    """Each dashboard file under grafana/dashboards/ (path relative to it) → its JSON."""
    return {str(path.relative_to(DASHBOARDS)): json.loads(path.read_text())
            for path in sorted(DASHBOARDS.rglob("*.json"))}


def panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel that shows data: rows are containers (their collapsed children included)."""
    for panel in dashboard.get("panels", []):
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(dashboard: Dashboard) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, query) for every query of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def query_variables(dashboard: Dashboard) -> list[dict[str, Any]]:
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def label_values(variable: dict[str, Any]) -> tuple[str | None, str]:
    """A `label_values([selector,] label)` variable's (selector or None, label)."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = LABEL_VALUES.match(text)
    if not match:
        raise ValueError(f"variable {variable['name']}: not a label_values query: {text}")
    return match.group(1), match.group(2)


def all_queries(dashboard: Dashboard) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target, variable selector and annotation."""
    for panel, target in targets(dashboard):
        yield f"{panel['title']} [{target['refId']}]", target["expr"]
    for variable in query_variables(dashboard):
        selector, _ = label_values(variable)
        if selector:
            yield f"variable {variable['name']}", selector
    for annotation in dashboard["annotations"]["list"]:
        yield f"annotation {annotation['name']}", annotation["expr"]


def expand(expr: str, dashboard: Dashboard, grafana: Mapping[str, str]) -> str:
    """Grafana's variable expansion with "All" selected in every filter; `grafana` holds the
    values of the global variables ($__rate_interval, …) the caller's time range gives."""
    values = dict(grafana) | {v["name"]: v["allValue"] for v in query_variables(dashboard)}
    return VARIABLE_REF.sub(lambda m: values[next(part for part in m.groups() if part)], expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads: identifiers left once variables, strings, label
    matchers, ranges, grouping clauses, offsets, numbers, functions and keywords are stripped."""
    expr = VARIABLE_REF.sub("x", expr)
    expr = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\boffset\s+-?\w+", " ", expr)
    expr = re.sub(r"(?<![\w:.])\d[\w.]*(?:[eE][+-]?\d+)?", " ", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[match.end():].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names
