"""Filters, queries and annotations: the PromQL side of the dashboards, spelled once.

A filter is a dashboard variable and the label matcher it becomes: `selector(JOB, INSTANCE)` is
`job=~"$job", instance=~"$instance"`. Multi-value variables expand to `a|b` and "All" to `.+`,
which only a regex matcher accepts. Queries carry the `$datasource` variable and Grafana's code
editor mode; panels get their reference ids (A, B, …) in the order they list their queries.
"""
from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as sdk
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE_INTERVAL = "$__rate_interval"  # Grafana's window for rate(): at least four scrapes
ALL = ".+"  # what "All" of a filter matches (a label that is present)


@dataclass(frozen=True)
class Filter:
    """A dashboard variable whose values are the `label` values of the series `source`."""

    name: str
    title: str
    source: str
    label: str = ""

    @property
    def matcher(self) -> str:
        return f'{self.label or self.name}=~"${self.name}"'

    def variable(self) -> sdk.QueryVariable:
        query = f"label_values({self.source}, {self.label or self.name})"
        return (
            sdk.QueryVariable(self.name)
            .label(self.title)
            .datasource(DATASOURCE)
            .query({"qryType": 1, "query": query,
                    "refId": "PrometheusVariableQueryEditor-VariableQuery"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .regex("")
            .hide(model.VariableHide.DONT_HIDE)
            .options([])
            .multi(True)
            .include_all(True)
            .all_value(ALL)
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )


def selector(*filters: Filter) -> str:
    """The label matchers of `filters`, to put inside a series selector's braces."""
    return ", ".join(f.matcher for f in filters)


JOB = Filter("job", "Job", "agent_exporter_build_info")
INSTANCE = Filter("instance", "Instance", f"agent_exporter_build_info{{{selector(JOB)}}}")
JOBS = selector(JOB)  # recorded series aggregated per job
INSTANCES = selector(JOB, INSTANCE)  # series of each exporter and its host


def histogram_p95(histogram: str, matchers: str, by: str = "") -> str:
    """PromQL: the 95th percentile of a histogram's observations over the rate interval, per
    `by` label(s) when given."""
    return (f"histogram_quantile(0.95, sum by ({by + ', ' if by else ''}le) "
            f"(rate({histogram}_bucket{{{matchers}}}[{RATE_INTERVAL}])))")


def query(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    """A range query: one value per step, for graphs and for stats that draw a sparkline."""
    return (
        prometheus.Dataquery()
        .datasource(DATASOURCE)
        .editor_mode(QueryEditorMode.CODE)
        .expr(expr)
        .legend_format(legend)
        .range()
    )


def table_query(expr: str) -> prometheus.Dataquery:
    """An instant query in table format: one row per series, its value in `Value #<refId>`."""
    return query(expr).instant().format(PromQueryFormat.TABLE)


def heatmap_query(expr: str) -> prometheus.Dataquery:
    """Bucket counts per `le`, which the heatmap draws as rows."""
    return query(expr, "{{le}}").format(PromQueryFormat.HEATMAP)


class PrometheusAnnotation(model.AnnotationQuery):
    """The Prometheus annotation fields that the SDK's generic annotation lacks: the step and
    the title, text and tags each marker shows."""

    def to_json(self) -> dict[str, object]:
        return super().to_json() | {
            "step": "60s", "titleFormat": "{{alertname}}",
            "textFormat": "{{severity}}: {{job}} {{instance}}", "tagKeys": "alertname,severity",
            "useValueForTime": False,
        }


class AlertAnnotation(Builder[model.AnnotationQuery]):
    """Markers where alerts whose labels match `matchers` fired, on every time series panel."""

    def __init__(self, name: str, matchers: str, color: str) -> None:
        self._internal = PrometheusAnnotation(
            name=name, datasource=DATASOURCE, enable=True, hide=False, icon_color=color,
            built_in=None, expr=f'ALERTS{{alertstate="firing", {matchers}}}')

    def build(self) -> model.AnnotationQuery:
        return self._internal
