"""The exporter's metric list, as documented: the names rules and dashboards may read.

docs/metrics.md and docs/collectors.md hold markdown tables whose first column is the metric name
in backticks. A name with `<field>` in it is a template (one metric per hash field).
"""
from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROW = re.compile(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:<>]*)`\s*\|\s*(counter|gauge|histogram|untyped)\s*\|",
                 re.MULTILINE)
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count")}


def documented() -> dict[str, str]:
    """Documented family name → type, from both reference pages."""
    names: dict[str, str] = {}
    for page in ("metrics.md", "collectors.md"):
        for name, kind in ROW.findall((DOCS / page).read_text()):
            names[name] = kind
    return names


def is_documented(series_name: str, names: dict[str, str] | None = None) -> bool:
    """Whether a series name (histogram parts included) belongs to a documented family."""
    names = documented() if names is None else names
    if series_name in names:
        return True
    for name, kind in names.items():
        if any(series_name == name + s for s in SUFFIXES.get(kind, ())):
            return True
        if "<" in name and re.fullmatch(re.sub(r"<[^>]+>", "[a-z0-9_]+", name), series_name):
            return True
    return False
