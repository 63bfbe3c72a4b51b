"""The Training dashboard (agent-exporter-training)."""
from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    TRAINING_CONVERGED_CHANGE_RATIO as CONVERGED,
)
from exporter.thresholds import (
    TRAINING_LOSS_HIGH,
    TRAINING_STALLED_SECONDS,
)

from .dashboard import dashboard
from .panels import (
    Panel,
    cell,
    join_by_time,
    merge,
    organize,
    red_above,
    red_below,
    right_axis_ratio,
    states,
    table,
    timeseries,
    trend,
    value_texts,
)
from .queries import (
    INSTANCE,
    JOB,
    AlertAnnotation,
    Filter,
    query,
    selector,
    table_query,
)

UID = "agent-exporter-training"
TITLE = "Agent Exporter · Training"
PROJECT = Filter("project", "Project", f"training_updates_total{{{selector(JOB)}}}")
PROJECTS = selector(JOB, INSTANCE, PROJECT)


def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "Training projects: loss and WER over time and over steps, trend, plateau and "
        "staleness, with training alerts as annotations.",
        ["training"], [JOB, INSTANCE, PROJECT],
        [
            projects().height(7),
            loss_over_time(),
            wer_over_time(),
            loss_and_wer_over_steps(),
            loss_slope(),
            loss_state(),
            progress_events_per_minute().span(8).height(7),
            time_since_last_progress().span(8).height(7),
            other_training_metrics().span(8).height(7),
        ],
        annotations=[AlertAnnotation("Training alerts", 'category="training", project=~"$project"', "orange")])


def projects() -> Panel:
    return project_table(
        "Projects",
        "One row per project: status in Redis, latest step, loss (TrainingLossHigh above 5), WER, "
        "loss slope per second over 10 minutes, relative loss change over 30 minutes (under 1 % "
        "is a plateau) and the age of the last progress event (TrainingStalled after 900 s "
        "while training).",
        PROJECTS, trend=True)


def project_table(title: str, description: str, projects: str, trend: bool) -> Panel:
    """One row per project: its status in Redis, latest step, loss and WER, with `trend` the
    loss slope and change, and the age of its last progress event. The overview shows it too."""
    columns = [
        ("Step", f"max by (project) (training_step{{{projects}}})", cell("none", decimals=0)),
        ("Loss", f"max by (project) (training_loss{{{projects}}})",
         cell("none", red_above(TRAINING_LOSS_HIGH))),
        ("WER", f"max by (project) (training_wer{{{projects}}})", cell("percentunit")),
    ]
    if trend:
        columns += [
            ("Loss slope /s", f"max by (project) (project:training_loss:deriv10m{{{projects}}})",
             cell("short", red_above(0))),
            ("Change 30 min",
             f"max by (project) (project:training_loss:change_ratio30m{{{projects}}})",
             cell("percentunit", red_below(CONVERGED))),
        ]
    columns.append(("Last progress",
                    f"min by (project) (project:training_last_update:age_seconds{{{projects}}})",
                    cell("s", red_above(TRAINING_STALLED_SECONDS))))
    panel = table(title, description, "short").with_target(table_query(
        f"max by (project, status) (training_project_status{{{projects}}} == 1)"))
    for name, expr, settings in columns:
        panel = panel.override_by_name(name, settings).with_target(table_query(expr))
    rename = {"project": "Project", "status": "Status"}
    rename |= {f"Value #{chr(ord('B') + i)}": name for i, (name, _, _) in enumerate(columns)}
    return (panel.with_transformation(merge())
            .with_transformation(organize(rename, hide=("Value #A",))))


def loss_over_time() -> Panel:
    return (
        timeseries(
            "Loss over time",
            "Latest training loss per project; TrainingLossHigh fires above 5.",
            "none",
            red_above(TRAINING_LOSS_HIGH))
        .with_target(query(f"training_loss{{{PROJECTS}}}", "{{project}}"))
    )


def wer_over_time() -> Panel:
    return (
        timeseries("WER over time", "Latest word error rate per project.", "percentunit")
        .min(0)
        .with_target(query(f"training_wer{{{PROJECTS}}}", "{{project}}"))
    )


def loss_and_wer_over_steps() -> Panel:
    return (
        trend(
            "Loss and WER over steps — $project",
            "Loss (left axis) and WER (right axis) against the training step, one panel per "
            "project (the panel repeats for each selected project).",
            "none",
            red_above(TRAINING_LOSS_HIGH))
        .override_by_query("C", right_axis_ratio(bounded=False))
        .with_target(query(f"max(training_step{{{PROJECTS}}})", "step"))
        .with_target(query(f"max(training_loss{{{PROJECTS}}})", "loss"))
        .with_target(query(f"max(training_wer{{{PROJECTS}}})", "wer"))
        .with_transformation(join_by_time())
        .repeat("project")
        .max_per_row(2)
    )


def loss_slope() -> Panel:
    return (
        timeseries(
            "Loss slope",
            "Loss change per second, linear fit over 10 minutes: below 0 the model improves, "
            "above 0 the loss rises.",
            "short",
            red_above(0))
        .with_target(query(f"project:training_loss:deriv10m{{{PROJECTS}}}", "{{project}}"))
    )


def loss_state() -> Panel:
    return (
        states(
            "Loss state",
            "Improving (loss falling), rising (slope above 0), or plateau / converged (loss "
            "changed less than 1 % over 30 minutes, seed 000 convergence test; "
            "TrainingLossConverged when it lasts).",
            value_texts((0, "improving", "green"), (1, "rising", "red"), (2, "plateau / converged", "blue")))
        .with_target(query(
            f"2 * (project:training_loss:change_ratio30m{{{PROJECTS}}} < bool {CONVERGED}) + "
            f"(project:training_loss:deriv10m{{{PROJECTS}}} > bool 0) * "
            f"(project:training_loss:change_ratio30m{{{PROJECTS}}} >= bool {CONVERGED})",
            "{{project}}"))
    )


def progress_events_per_minute() -> Panel:
    return (
        timeseries(
            "Progress events per minute",
            "Progress events received per minute and project.",
            "opm")
        .with_target(query(f"project:training_updates:rate5m{{{PROJECTS}}} * 60", "{{project}}"))
    )


def time_since_last_progress() -> Panel:
    return (
        timeseries(
            "Time since last progress",
            "Seconds since each project's last progress event; TrainingStalled fires after 900 "
            "s while Redis says the project is training.",
            "s",
            red_above(TRAINING_STALLED_SECONDS))
        .with_target(query(
            f"project:training_last_update:age_seconds{{{PROJECTS}}}",
            "{{project}}"))
    )


def other_training_metrics() -> Panel:
    return (
        timeseries(
            "Other training metrics",
            "Every other numeric field of the progress events (accuracy, learning rate, …) by "
            "project and name.",
            "short")
        .with_target(query(f"training_metric{{{PROJECTS}}}", "{{project}} {{name}}"))
    )
