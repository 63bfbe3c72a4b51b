"""What every dashboard shares, and how one is put together and written.

Each dashboard gets the same frame: seed 004's refresh (30 s), quick ranges (5 minutes to 24 hours)
and default range (1 hour); the `agent-exporter` tag and the link menu to every dashboard that
carries it; the `$datasource` variable and the dashboard's filters. Panels are placed on the grid
in the order given (see layout.py) and numbered; their queries get reference ids A, B, ….
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from grafana_foundation_sdk.builders import dashboard as sdk
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import Dataquery

from .layout import COLUMNS, place
from .panels import Panel
from .queries import AlertAnnotation, Filter

TAG = "agent-exporter"
MENU = "Agent Exporter dashboards"
REFRESH = "30s"
REFRESH_INTERVALS = [REFRESH, "1m", "5m", "15m", "1h"]
QUICK_RANGES = {"5m": "Last 5 minutes", "15m": "Last 15 minutes", "1h": "Last 1 hour",
                "4h": "Last 4 hours", "24h": "Last 24 hours"}
DEFAULT_RANGE = "1h"

Item: TypeAlias = Panel | sdk.Row


def row(title: str) -> sdk.Row:
    """A section header across the dashboard; the panels after it belong to it."""
    return sdk.Row(title).collapsed(False).grid_pos(model.GridPos(h=1, w=COLUMNS))


def dashboard(uid: str, title: str, description: str, tags: Sequence[str],
              filters: Sequence[Filter], panels: Sequence[Item],
              annotations: Iterable[AlertAnnotation] = ()) -> model.Dashboard:
    """A dashboard of `panels` (placed in this order) with the bundle's frame."""
    built = (
        sdk.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, *tags])
        .timezone("browser")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .fiscal_year_start_month(0)
        .live_now(False)
        .version(1)
        .refresh(REFRESH)
        .time(f"now-{DEFAULT_RANGE}", "now")
        .timepicker(sdk.TimePicker().refresh_intervals(REFRESH_INTERVALS).quick_ranges(
            [sdk.TimeOption().display(text).from_val(f"now-{span}").to("now")
             for span, text in QUICK_RANGES.items()]))
        .link(sdk.DashboardLink(MENU).type(model.DashboardLinkType.DASHBOARDS).tags([TAG])
              .as_dropdown(True).include_vars(True).keep_time(True).icon("external link")
              .tooltip("").url("").target_blank(False))
        .variables([datasource_variable(), *(f.variable() for f in filters)])
        .annotations(list(annotations))
        .build()
    )
    built.panels = arrange([item.build() for item in panels])
    return built


def datasource_variable() -> sdk.DatasourceVariable:
    """`$datasource`: every panel, query, variable and annotation reads through it."""
    return (sdk.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .regex("").hide(model.VariableHide.DONT_HIDE).multi(False).include_all(False)
            .current(model.VariableOption(selected=False, text="Prometheus", value="prometheus")))


def arrange(items: list[model.Panel | model.RowPanel]) -> list[model.Panel | model.RowPanel]:
    """Grid positions, panel ids and query reference ids, all from the order of `items`."""
    sizes = []
    for item in items:
        if item.grid_pos is None:
            raise ValueError(f"panel {item.title!r} has no size")
        sizes.append((item.grid_pos.w, item.grid_pos.h, isinstance(item, model.RowPanel)))
    for number, (item, (x, y)) in enumerate(zip(items, place(sizes)), start=1):
        assert item.grid_pos is not None
        item.grid_pos.x, item.grid_pos.y = x, y
        item.id_val = number
        if isinstance(item, model.Panel):
            for index, target in enumerate(item.targets or []):
                assert isinstance(target, Dataquery)
                target.ref_id = chr(ord("A") + index)
    return items


def render(built: model.Dashboard) -> str:
    """The dashboard's JSON: keys sorted, two-space indent, a final newline, so that a change
    to the code shows as a small diff of the file."""
    return json.dumps(built, cls=JSONEncoder, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
