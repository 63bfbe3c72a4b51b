"""The panel kinds the dashboards are made of, with the bundle's defaults set once.

Every kind takes what no panel may lack (title, description, unit) and, where the panel marks an
alert rule's threshold, the threshold steps: stats, gauges and states then colour their values by
them and time series draw them as dashed lines. Without thresholds a panel keeps one neutral
colour. A panel function adds its queries and whatever is its own; a dashboard sets its size.
"""
from __future__ import annotations

from typing import TypeAlias, TypeVar

from grafana_foundation_sdk.builders import bargauge as sdk_bargauge
from grafana_foundation_sdk.builders import common as sdk_common
from grafana_foundation_sdk.builders import dashboard as sdk
from grafana_foundation_sdk.builders import gauge as sdk_gauge
from grafana_foundation_sdk.builders import heatmap as sdk_heatmap
from grafana_foundation_sdk.builders import stat as sdk_stat
from grafana_foundation_sdk.builders import statetimeline as sdk_statetimeline
from grafana_foundation_sdk.builders import table as sdk_table
from grafana_foundation_sdk.builders import timeseries as sdk_timeseries
from grafana_foundation_sdk.builders import trend as sdk_trend
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model

from .queries import DATASOURCE

Panel: TypeAlias = (sdk_stat.Panel | sdk_timeseries.Panel | sdk_table.Panel | sdk_heatmap.Panel
                    | sdk_statetimeline.Panel | sdk_bargauge.Panel | sdk_gauge.Panel
                    | sdk_trend.Panel)
P = TypeVar("P", sdk_stat.Panel, sdk_timeseries.Panel, sdk_table.Panel, sdk_heatmap.Panel,
            sdk_statetimeline.Panel, sdk_bargauge.Panel, sdk_gauge.Panel, sdk_trend.Panel)

NEUTRAL = "blue"
HEATMAP_COLUMNS = 200  # a wider heatmap has cells narrower than a pixel and costs Prometheus more


# -- thresholds, value texts, table cells -----------------------------------------------------

def steps(base: str, *edges: tuple[float, str]) -> sdk.ThresholdsConfig:
    """`base` below the first edge, then each (value, colour) from its value up."""
    return (sdk.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=None, color=base)]
                   + [model.Threshold(value=value, color=color) for value, color in edges]))


def red_above(red: float, orange: float | None = None) -> sdk.ThresholdsConfig:
    """Green, orange from `orange`, red from `red`: for values an alert fires above."""
    warn = [(orange, "orange")] if orange is not None else []
    return steps("green", *warn, (red, "red"))


def red_below(red: float, orange: float | None = None) -> sdk.ThresholdsConfig:
    """Red under `red`, orange under `orange`, green above: for values an alert fires below."""
    if orange is None:
        return steps("red", (red, "green"))
    return steps("red", (red, "orange"), (orange, "green"))


def value_texts(*texts: tuple[int, str, str]) -> list[model.ValueMapping]:
    """(value, text, colour) for states a number stands for, e.g. (1, "up", "green")."""
    return [model.ValueMap(options={str(value): model.ValueMappingResult(
        text=text, color=color, index=index) for index, (value, text, color) in enumerate(texts)})]


def cell(unit: str, thresholds: sdk.ThresholdsConfig | None = None, decimals: int | None = None,
         texts: list[model.ValueMapping] | None = None) -> list[model.DynamicConfigValue]:
    """A table column's settings: its unit, and its text coloured by thresholds, or value texts."""
    found = [model.DynamicConfigValue(id_val="unit", value=unit)]
    if decimals is not None:
        found.append(model.DynamicConfigValue(id_val="decimals", value=decimals))
    if texts is not None:
        found.append(model.DynamicConfigValue(id_val="mappings", value=texts))
    if thresholds is not None:
        found += [model.DynamicConfigValue(id_val="thresholds", value=thresholds.build()),
                  model.DynamicConfigValue(id_val="custom.cellOptions",
                                           value=common.TableColorTextCellOptions())]
    return found


def right_axis_ratio(bounded: bool = True) -> list[model.DynamicConfigValue]:
    """A second series drawn as a ratio on the right axis (0 to 1 unless not `bounded`)."""
    found = [model.DynamicConfigValue(id_val="unit", value="percentunit"),
             model.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
             model.DynamicConfigValue(id_val="min", value=0)]
    return found + [model.DynamicConfigValue(id_val="max", value=1)] if bounded else found


# -- links and table transformations ----------------------------------------------------------

def detail_link(uid: str, title: str, view_panel: int | None = None) -> sdk.DashboardLink:
    """A panel link to the dashboard that explains it (or to its panel `view_panel`, shown
    alone), keeping the time range and filters."""
    view = "" if view_panel is None else f"viewPanel={view_panel}&"
    return (sdk.DashboardLink(f"Open {title}").url(f"/d/{uid}?{view}${{__url_time_range}}"
                                                   "&${__all_variables}").target_blank(False))


def merge() -> model.DataTransformerConfig:
    """One table row per label set out of the instant queries of a table."""
    return model.DataTransformerConfig(id_val="merge", options={})


def organize(rename: dict[str, str], hide: tuple[str, ...] = (),
             order: tuple[str, ...] = ()) -> model.DataTransformerConfig:
    """Rename columns, hide `Time`, `__name__` and `hide`, and put `order` first."""
    options: dict[str, object] = {
        "excludeByName": dict.fromkeys(("Time", "__name__", *hide), True),
        "renameByName": rename,
    }
    if order:
        options["indexByName"] = {name: index for index, name in enumerate(order)}
    return model.DataTransformerConfig(id_val="organize", options=options)


def join_by_time() -> model.DataTransformerConfig:
    """One frame out of several queries, joined on their timestamps."""
    return model.DataTransformerConfig(id_val="joinByField",
                                       options={"byField": "Time", "mode": "outer"})


def sorted_by(column: str, descending: bool) -> list[Builder[common.TableSortByFieldState]]:
    """A table's initial sort order."""
    return [sdk_common.TableSortByFieldState().display_name(column).desc(descending)]


# -- the kinds --------------------------------------------------------------------------------

def _base(panel: P, title: str, description: str, unit: str,
          thresholds: sdk.ThresholdsConfig | None) -> P:
    return (panel.title(title).description(description).datasource(DATASOURCE).unit(unit)
            .thresholds(thresholds or steps(NEUTRAL)))


def _last_value() -> sdk_common.ReduceDataOptions:
    return sdk_common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def _colour(thresholds: sdk.ThresholdsConfig | None) -> sdk.FieldColor:
    if thresholds is None:
        return sdk.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color(NEUTRAL)
    return sdk.FieldColor().mode(model.FieldColorModeId.THRESHOLDS)


def _legend() -> sdk_common.VizLegendOptions:
    return (sdk_common.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs([]))


def _tooltip(mode: common.TooltipDisplayMode,
             order: common.SortOrder) -> sdk_common.VizTooltipOptions:
    return sdk_common.VizTooltipOptions().mode(mode).sort(order)


def stat(title: str, description: str, unit: str,
         thresholds: sdk.ThresholdsConfig | None = None) -> sdk_stat.Panel:
    """The latest value, large, over a sparkline."""
    return (
        _base(sdk_stat.Panel(), title, description, unit, thresholds)
        .span(4).height(4)
        .color_scheme(_colour(thresholds))
        .reduce_options(_last_value())
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .text_mode(common.BigValueTextMode.AUTO)
        .wide_layout(True)
        .show_percent_change(False)
    )


def timeseries(title: str, description: str, unit: str,
               thresholds: sdk.ThresholdsConfig | None = None) -> sdk_timeseries.Panel:
    """Lines over time; alert thresholds as dashed lines."""
    panel = (
        _base(sdk_timeseries.Panel(), title, description, unit, thresholds)
        .span(12).height(8)
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(_legend())
        .tooltip(_tooltip(common.TooltipDisplayMode.MULTI, common.SortOrder.DESCENDING))
    )
    if thresholds is not None:
        panel = panel.thresholds_style(dashed())
    return panel


def dashed() -> sdk_common.GraphThresholdsStyleConfig:
    return sdk_common.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)


def trend(title: str, description: str, unit: str,
          thresholds: sdk.ThresholdsConfig | None = None) -> sdk_trend.Panel:
    """Lines against a numeric field (the first) instead of time."""
    return (
        _base(sdk_trend.Panel(), title, description, unit, thresholds)
        .span(24).height(8)
        .legend(_legend())
        .tooltip(_tooltip(common.TooltipDisplayMode.MULTI, common.SortOrder.NONE))
    )


def states(title: str, description: str, texts: list[model.ValueMapping],
           thresholds: sdk.ThresholdsConfig | None = None) -> sdk_statetimeline.Panel:
    """Which state each series was in over time, one band per series."""
    panel = (
        _base(sdk_statetimeline.Panel(), title, description, "none", thresholds)
        .span(12).height(8)
        .mappings(texts)
        .fill_opacity(80)
        .line_width(0)
        .merge_values(True)
        .show_value(common.VisibilityMode.AUTO)
        .align_value(common.TimelineValueAlignment.LEFT)
        .row_height(0.9)
        .legend(_legend())
        .tooltip(_tooltip(common.TooltipDisplayMode.SINGLE, common.SortOrder.NONE))
    )
    if thresholds is not None:
        panel = panel.color_scheme(_colour(thresholds))
    return panel


def table(title: str, description: str, unit: str) -> sdk_table.Panel:
    """Rows of instant values; columns set with `cell`, built with `merge` and `organize`."""
    return (
        _base(sdk_table.Panel(), title, description, unit, None)
        .span(24).height(8)
        .cell_height(common.TableCellHeight.SM)
        .show_header(True)
        .footer(sdk_common.TableFooterOptions().show(False).reducer(["sum"]))
    )


def heatmap(title: str, description: str, y_unit: str) -> sdk_heatmap.Panel:
    """Counts per histogram bucket over time, darker for more."""
    return (
        _base(sdk_heatmap.Panel(), title, description, "short", None)
        .span(12).height(8)
        .max_data_points(HEATMAP_COLUMNS)
        .calculate(False)
        .cell_gap(1)
        .color(sdk_heatmap.HeatmapColorOptions().mode(heatmap_model.HeatmapColorMode.SCHEME)
               .scheme("Oranges").steps(64).scale(heatmap_model.HeatmapColorScale.EXPONENTIAL)
               .exponent(0.5).fill("dark-orange").reverse(False))
        .rows_frame(sdk_heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.AUTO))
        .y_axis(sdk_heatmap.YAxisConfig().axis_placement(common.AxisPlacement.LEFT).unit(y_unit))
        .cell_values(sdk_heatmap.CellValues().unit("short"))
        .show_legend()
        .mode(common.TooltipDisplayMode.SINGLE)
        .hide_y_histogram()
        .show_color_scale(False)
        .filter_values(sdk_heatmap.FilterValueRange().le(1e-9))
        .exemplars_color("rgba(255,0,255,0.7)")
    )


def bars(title: str, description: str, unit: str,
         thresholds: sdk.ThresholdsConfig) -> sdk_bargauge.Panel:
    """One horizontal bar per series, coloured by thresholds."""
    return (
        _base(sdk_bargauge.Panel(), title, description, unit, thresholds)
        .span(12).height(8)
        .color_scheme(_colour(thresholds))
        .reduce_options(_last_value())
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .value_mode(common.BarGaugeValueMode.COLOR)
        .name_placement(common.BarGaugeNamePlacement.AUTO)
        .sizing(common.BarGaugeSizing.AUTO)
        .min_viz_height(16)
        .min_viz_width(8)
        .max_viz_height(300)
    )


def gauge(title: str, description: str, unit: str,
          thresholds: sdk.ThresholdsConfig) -> sdk_gauge.Panel:
    """A dial with the thresholds marked on its rim."""
    return (
        _base(sdk_gauge.Panel(), title, description, unit, thresholds)
        .span(6).height(8)
        .color_scheme(_colour(thresholds))
        .reduce_options(_last_value())
        .show_threshold_labels(False)
        .show_threshold_markers(True)
        .min_viz_height(75)
        .min_viz_width(75)
        .orientation(common.VizOrientation.AUTO)
        .sizing(common.BarGaugeSizing.AUTO)
    )
