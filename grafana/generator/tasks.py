"""The Tasks & SLA dashboard (agent-exporter-tasks)."""
from __future__ import annotations

from grafana_foundation_sdk.builders import common as sdk_common
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    AGENT_ERROR_RATIO_HIGH,
    DURATION_ANOMALY_ZSCORE,
    TASK_ANOMALY_ZSCORE,
    TASK_SLA_COMPLIANCE_RATIO,
    TASK_SLA_SECONDS,
    TASK_SLO_BURN_RATES,
    TASK_SLO_RATIO,
    TASK_THROUGHPUT_MIN_PER_HOUR,
)

from .dashboard import dashboard
from .panels import Panel, heatmap, red_above, red_below, stat, steps, timeseries
from .queries import JOB, JOBS, Filter, heatmap_query, query, selector

UID = "agent-exporter-tasks"
TITLE = "Agent Exporter · Tasks & SLA"
AGENT = Filter("agent", "Agent", f"agent_last_seen_timestamp_seconds{{{selector(JOB)}}}")
AGENTS = selector(JOB, AGENT)
ERROR_BUDGET = f"(1 - {TASK_SLO_RATIO})"  # the share of tasks the SLO lets break the SLA


def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "Task throughput, durations and the task SLO: 99 % of tasks within 1800 s, with "
        "multi-window burn rates.",
        ["tasks", "slo"], [JOB, AGENT],
        [
            completed_1_h(),
            sla_compliance_1_h(),
            error_budget_left_1_d(),
            success_ratio_5_min(),
            p95_duration_5_min(),
            mean_duration_5_min(),
            task_updates_by_status(),
            throughput_per_agent_top_10(),
            task_duration_percentiles(),
            task_duration_heatmap(),
            sla_compliance_over_time(),
            slo_burn_rates(),
            error_ratio_per_agent_15_min_top_10(),
            errors_reported(),
            anomaly_z_scores().span(24).height(7),
        ])


def completed_1_h() -> Panel:
    return (
        stat(
            "Completed (1 h)",
            "Tasks with status done in the last hour; TaskThroughputLow fires under 10.",
            "short",
            red_below(TASK_THROUGHPUT_MIN_PER_HOUR))
        .decimals(0)
        .with_target(query(f"job:agent_tasks_completed:increase1h{{{JOBS}}}", "{{job}}"))
    )


def sla_compliance_1_h() -> Panel:
    return (
        stat(
            "SLA compliance (1 h)",
            "Share of tasks finished within 1800 s in the last hour; TaskSlaComplianceLow "
            "fires under 90 %.",
            "percentunit",
            red_below(TASK_SLA_COMPLIANCE_RATIO, orange=TASK_SLO_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"job:agent_task_sla_compliance:ratio_rate1h{{{JOBS}}}", "{{job}}"))
    )


def error_budget_left_1_d() -> Panel:
    return (
        stat(
            "Error budget left (1 d)",
            "1 - (share of tasks over 1800 s in the last day) / 1 %: the part of the 99 % "
            "SLO's error budget the last day left unspent; negative means overspent.",
            "percentunit",
            red_below(0, orange=0.5))
        .max(1)
        .with_target(query(
            f"1 - job:agent_task_sla_errors:ratio_rate1d{{{JOBS}}} / {ERROR_BUDGET}",
            "{{job}}"))
    )


def success_ratio_5_min() -> Panel:
    return (
        stat(
            "Success ratio (5 min)",
            "done / (done + failed) over 5 minutes.",
            "percentunit",
            red_below(0.75, orange=0.9))
        .min(0)
        .max(1)
        .with_target(query(f"job:agent_tasks_success:ratio_rate5m{{{JOBS}}}", "{{job}}"))
    )


def p95_duration_5_min() -> Panel:
    return (
        stat(
            "p95 duration (5 min)",
            "95th percentile task duration over 5 minutes; the SLA is 1800 s.",
            "s",
            red_above(TASK_SLA_SECONDS, orange=TASK_SLA_SECONDS // 2))
        .with_target(query(f"job:agent_task_duration_seconds:p95_5m{{{JOBS}}}", "{{job}}"))
    )


def mean_duration_5_min() -> Panel:
    return (
        stat("Mean duration (5 min)", "Mean task duration over 5 minutes.", "s")
        .with_target(query(f"job:agent_task_duration_seconds:mean5m{{{JOBS}}}", "{{job}}"))
    )


def task_updates_by_status() -> Panel:
    return (
        timeseries(
            "Task updates by status",
            "Task events per minute by status (done, failed, and progress statuses).",
            "opm")
        .with_target(query(f"job_status:agent_tasks:rate5m{{{JOBS}}} * 60", "{{status}}"))
    )


def throughput_per_agent_top_10() -> Panel:
    return (
        timeseries(
            "Throughput per agent (top 10)",
            "Tasks completed (status done) per minute by the ten busiest agents at each moment.",
            "opm")
        .with_target(query(
            f'topk(10, agent_status:agent_tasks:rate5m{{{AGENTS}, status="done"}}) * 60',
            "{{agent}}"))
    )


def task_duration_percentiles() -> Panel:
    return (
        timeseries(
            "Task duration percentiles",
            "p50, p95, p99 and mean task duration over 5 minutes; the dashed line is the 1800 "
            "s SLA.",
            "s",
            red_above(TASK_SLA_SECONDS))
        .with_target(query(f"job:agent_task_duration_seconds:p50_5m{{{JOBS}}}", "p50"))
        .with_target(query(f"job:agent_task_duration_seconds:p95_5m{{{JOBS}}}", "p95"))
        .with_target(query(f"job:agent_task_duration_seconds:p99_5m{{{JOBS}}}", "p99"))
        .with_target(query(f"job:agent_task_duration_seconds:mean5m{{{JOBS}}}", "mean"))
    )


def task_duration_heatmap() -> Panel:
    return (
        heatmap(
            "Task duration heatmap",
            "Finished tasks per duration bucket over time (buckets end at the 1800 s SLA "
            "edge). Reads the recorded per-bucket rate (tasks per second, 5 m window), so 90 "
            "days stay cheap.",
            "s")
        .with_target(heatmap_query(
            f"sum by (le) (agent_le:agent_task_duration_seconds_bucket:rate5m{{{AGENTS}}})"))
    )


def sla_compliance_over_time() -> Panel:
    return (
        timeseries(
            "SLA compliance over time",
            "Share of tasks within 1800 s over one hour, for the swarm and for the ten least "
            "compliant agents at each moment; TaskSlaComplianceLow fires under 90 %.",
            "percentunit",
            red_below(TASK_SLA_COMPLIANCE_RATIO))
        .max(1)
        .with_target(query(f"job:agent_task_sla_compliance:ratio_rate1h{{{JOBS}}}", "swarm"))
        .with_target(query(
            f"bottomk(10, agent:agent_task_sla_compliance:ratio_rate1h{{{AGENTS}}})",
            "{{agent}}"))
    )


def slo_burn_rates() -> Panel:
    panel = (
        timeseries(
            "SLO burn rates",
            "Error-budget burn rate (share of tasks over 1800 s / 1 %) per window. The "
            "burn-rate alerts pair windows: 1 h & 5 m above 14.4, 6 h & 30 m above 6, 1 d & 2 "
            "h above 3.",
            "none",
            steps("green", *zip(reversed(TASK_SLO_BURN_RATES), ("yellow", "orange", "red"))))
        .min(0)
    )
    for window in ("5m", "30m", "1h", "2h", "6h", "1d"):  # the windows the burn-rate alerts pair
        panel = panel.with_target(query(
            f"job:agent_task_sla_errors:ratio_rate{window}{{{JOBS}}} / {ERROR_BUDGET}", window))
    return panel


def error_ratio_per_agent_15_min_top_10() -> Panel:
    return (
        timeseries(
            "Error ratio per agent, 15 min (top 10)",
            "failed / (done + failed) over 15 minutes for the ten agents failing most at each "
            "moment; AgentErrorRateHigh fires above 25 %.",
            "percentunit",
            red_above(AGENT_ERROR_RATIO_HIGH))
        .min(0)
        .max(1)
        .with_target(query(
            f"topk(10, agent:agent_tasks_error:ratio_rate15m{{{AGENTS}}})",
            "{{agent}}"))
    )


def errors_reported() -> Panel:
    return (
        timeseries(
            "Errors reported",
            "Error events per minute on events:errors:<kind>, by kind and component.",
            "opm")
        .with_target(query(
            f"sum by (kind, component) (rate(agent_errors_total{{{JOBS}}}[$__rate_interval])) * "
            "60",
            "{{kind}} / {{component}}"))
    )


def anomaly_z_scores() -> Panel:
    return (
        timeseries(
            "Anomaly z-scores",
            "How many standard deviations task throughput and mean duration are from the "
            f"previous hour (TaskThroughputAnomaly beyond ±{TASK_ANOMALY_ZSCORE:g}, "
            f"TaskDurationAnomaly beyond ±{DURATION_ANOMALY_ZSCORE:g}). Empty "
            "during the first 70 minutes of history: the baseline is the previous hour, "
            "shifted back 10 minutes.",
            "none",
            steps("red", (-TASK_ANOMALY_ZSCORE, "green"), (TASK_ANOMALY_ZSCORE, "red")))
        .thresholds_style(sdk_common.GraphThresholdsStyleConfig()
                          .mode(common.GraphThresholdsStyleMode.LINE_AND_AREA))
        .with_target(query(f"job:agent_tasks_completed:rate5m_zscore{{{JOBS}}}", "throughput"))
        .with_target(query(
            f"job:agent_task_duration_seconds:mean5m_zscore{{{JOBS}}}",
            "mean duration"))
    )
