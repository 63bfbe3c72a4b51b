"""The Workflows dashboard (agent-exporter-workflows)."""
from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    SLOW_STEP_SECONDS,
)

from .dashboard import dashboard
from .panels import (
    Panel,
    cell,
    heatmap,
    merge,
    organize,
    red_above,
    sorted_by,
    stat,
    table,
    timeseries,
)
from .queries import JOB, Filter, heatmap_query, query, selector, table_query

UID = "agent-exporter-workflows"
TITLE = "Agent Exporter · Workflows"
WORKFLOW = Filter("workflow", "Workflow", f"workflow_step_duration_seconds_count{{{selector(JOB)}}}")
STEPS = selector(JOB, WORKFLOW)


def build() -> Dashboard:
    return dashboard(
        UID, TITLE, "Workflow steps (seed 000 workflow orchestrator): how long each step takes.",
        ["workflows"], [JOB, WORKFLOW],
        [
            steps_finished_10_min().span(6),
            slowest_step_mean().span(6),
            slowest_step_p95().span(6),
            active_workflows().span(6),
            mean_step_duration(),
            p95_step_duration(),
            steps(),
            step_duration_heatmap(),
            steps_finished_per_minute(),
        ])


def steps_finished_10_min() -> Panel:
    return (
        stat("Steps finished (10 min)", "Workflow steps finished in the last 10 minutes.", "short")
        .decimals(0)
        .with_target(query(
            f"sum(workflow_step:workflow_step_duration_seconds_count:increase10m{{{STEPS}}})",
            "steps"))
    )


def slowest_step_mean() -> Panel:
    return (
        stat(
            "Slowest step (mean)",
            "Largest mean step duration over 10 minutes; WorkflowStepSlow fires above 600 s "
            "with at least 10 samples.",
            "s",
            red_above(SLOW_STEP_SECONDS, orange=SLOW_STEP_SECONDS // 2))
        .with_target(query(
            f"max(workflow_step:workflow_step_duration_seconds:mean10m{{{STEPS}}})",
            "slowest"))
    )


def slowest_step_p95() -> Panel:
    return (
        stat(
            "Slowest step (p95)",
            "Largest p95 step duration over 10 minutes.",
            "s",
            red_above(SLOW_STEP_SECONDS, orange=SLOW_STEP_SECONDS // 2))
        .with_target(query(
            f"max(workflow_step:workflow_step_duration_seconds:p95_10m{{{STEPS}}})",
            "slowest"))
    )


def active_workflows() -> Panel:
    return (
        stat("Active workflows", "Workflows with a finished step in the last 10 minutes.", "short")
        .decimals(0)
        .with_target(query(
            "count(count by (workflow) "
            f"(workflow_step:workflow_step_duration_seconds_count:increase10m{{{STEPS}}} > 0))",
            "workflows"))
    )


def mean_step_duration() -> Panel:
    return (
        timeseries(
            "Mean step duration",
            "Mean duration per workflow and step over 10 minutes (the seed's avgDuration); "
            "WorkflowStepSlow fires above 600 s.",
            "s",
            red_above(SLOW_STEP_SECONDS))
        .with_target(query(
            f"workflow_step:workflow_step_duration_seconds:mean10m{{{STEPS}}}",
            "{{workflow}} / {{step}}"))
    )


def p95_step_duration() -> Panel:
    return (
        timeseries(
            "p95 step duration",
            "95th percentile duration per workflow and step over 10 minutes.",
            "s",
            red_above(SLOW_STEP_SECONDS))
        .with_target(query(
            f"workflow_step:workflow_step_duration_seconds:p95_10m{{{STEPS}}}",
            "{{workflow}} / {{step}}"))
    )


def steps() -> Panel:
    return (
        table(
            "Steps",
            "One row per workflow step: mean and p95 duration and steps finished over 10 "
            "minutes.",
            "s")
        .sort_by(sorted_by("Mean", descending=True))
        .override_by_name("Mean", cell("s", red_above(SLOW_STEP_SECONDS, orange=SLOW_STEP_SECONDS // 2)))
        .override_by_name("p95", cell("s", red_above(SLOW_STEP_SECONDS)))
        .override_by_name("Finished (10 min)", cell("short", decimals=0))
        .with_target(table_query(
            f"workflow_step:workflow_step_duration_seconds:mean10m{{{STEPS}}}"))
        .with_target(table_query(
            f"workflow_step:workflow_step_duration_seconds:p95_10m{{{STEPS}}}"))
        .with_target(table_query(
            f"workflow_step:workflow_step_duration_seconds_count:increase10m{{{STEPS}}}"))
        .with_transformation(merge())
        .with_transformation(organize(
            {
                "workflow": "Workflow",
                "step": "Step",
                "Value #A": "Mean",
                "Value #B": "p95",
                "Value #C": "Finished (10 min)",
            }))
    )


def step_duration_heatmap() -> Panel:
    return (
        heatmap(
            "Step duration heatmap",
            "Finished steps per duration bucket over time (600 s is the slow-step edge).",
            "s")
        .with_target(heatmap_query(
            "sum by (le) "
            f"(increase(workflow_step_duration_seconds_bucket{{{STEPS}}}[$__rate_interval]))"))
    )


def steps_finished_per_minute() -> Panel:
    return (
        timeseries(
            "Steps finished per minute",
            "Steps finished per minute by workflow and step.",
            "opm")
        .with_target(query(
            "sum by (workflow, step) "
            f"(rate(workflow_step_duration_seconds_count{{{STEPS}}}[$__rate_interval])) * 60",
            "{{workflow}} / {{step}}"))
    )
