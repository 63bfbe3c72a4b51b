"""The Overview dashboard (agent-exporter-overview)."""
from __future__ import annotations

from grafana_foundation_sdk.builders import common as sdk_common
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    HOST_CPU_UTILIZATION_HIGH_RATIO,
    HOST_MEMORY_UTILIZATION_HIGH_RATIO,
    LOAD_IMBALANCE_RATIO,
    RAG_CACHE_HIT_MIN_RATIO,
    RAG_LATENCY_P95_SECONDS,
    RAG_LOW_CONFIDENCE_MAX_RATIO,
    RAG_SUCCESS_MIN_RATIO,
    SWARM_AVAILABILITY_MIN_RATIO,
    TASK_SLA_COMPLIANCE_RATIO,
    TASK_SLO_RATIO,
    TASK_THROUGHPUT_MIN_PER_HOUR,
)

from . import agents, gpu, llm, rag, system, tasks, training
from .dashboard import dashboard, row
from .panels import (
    Panel,
    bars,
    detail_link,
    gauge,
    organize,
    red_above,
    red_below,
    right_axis_ratio,
    sorted_by,
    stat,
    states,
    table,
    timeseries,
    value_texts,
)
from .queries import (
    INSTANCE,
    INSTANCES,
    JOB,
    JOBS,
    AlertAnnotation,
    histogram_p95,
    query,
    table_query,
)

UID = "agent-exporter-overview"
TITLE = "Agent Exporter · Overview"



def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "The swarm at a glance: the seed-004 performance score, swarm, LLM spend, tasks, RAG, "
        "training, GPUs and firing alerts. Every section links to its detail dashboard.",
        ["overview"], [JOB, INSTANCE],
        [
            row("System overview"),
            performance_score().span(5),
            score_components().span(7),
            cpu_utilisation(),
            memory_utilisation(),
            load_average_1_min(),
            cpu_and_memory_utilisation().height(4),
            row("Swarm coordination"),
            swarm_availability(),
            agents_available_known(),
            busy_agents(),
            queue_depth(),
            load_imbalance_10_min(),
            mean_agent_load(),
            row("Agent performance"),
            success_ratio_per_agent_1_h().span(9).height(6),
            agent_availability_10_least_available().span(9).height(6),
            llm_spend().span(6).height(6),
            row("Tasks"),
            tasks_completed_1_h().span(6),
            sla_compliance_1_h().span(6),
            error_budget_left_1_d().span(6),
            task_success_ratio_5_min().span(6),
            row("RAG performance"),
            rag_p95_latency(),
            rag_success_ratio(),
            rag_cache_hit_ratio(),
            rag_latency_success_and_cache_hits(),
            rag_queries_per_second(),
            low_confidence_answers(),
            rag_mean_latency(),
            row("Users"),
            user_response_time_p95().span(12),
            satisfied_ratings().span(6),
            user_sessions().span(6),
            user_feedback_per_hour().span(12),
            abandoned_sessions_per_hour().span(12),
            row("Training and GPUs"),
            training_status_per_project().span(16).height(7),
            gpus_in_use().span(8).height(7),
            row("Recent alerts"),
            firing_alerts().span(16),
            firing_alerts_by_severity().span(8),
        ],
        annotations=[AlertAnnotation("Critical alerts", 'severity="critical"', "red")])


def performance_score() -> Panel:
    return (
        gauge(
            "Performance score",
            "Seed-004 overall performance score, 0-100: 25 % system, 35 % agents, 25 % RAG, 15 "
            "% stability (job:performance_score:overall). Is the swarm healthy overall?",
            "none",
            red_below(60, orange=80))
        .min(0)
        .max(100)
        .decimals(0)
        .with_target(query(f"job:performance_score:overall{{{JOBS}}}", "{{job}}"))
    )


def score_components() -> Panel:
    return (
        bars(
            "Score components",
            "The four parts of the performance score (0-100 each): which part pulls it down?",
            "none",
            red_below(60, orange=80))
        .min(0)
        .max(100)
        .decimals(0)
        .with_target(query(f"job:performance_score:system{{{JOBS}}}", "system"))
        .with_target(query(f"job:performance_score:agents{{{JOBS}}}", "agents"))
        .with_target(query(f"job:performance_score:rag{{{JOBS}}}", "rag"))
        .with_target(query(f"job:performance_score:stability{{{JOBS}}}", "stability"))
    )


def cpu_utilisation() -> Panel:
    return (
        stat(
            "CPU utilisation",
            "Host CPU busy share over 5 minutes; HostCpuUtilizationHigh fires above 90 %.",
            "percentunit",
            red_above(HOST_CPU_UTILIZATION_HIGH_RATIO, orange=0.7))
        .min(0)
        .max(1)
        .with_target(query(
            f"instance:system_cpu_utilization:ratio_rate5m{{{INSTANCES}}}",
            "{{instance}}"))
        .links([detail_link(system.UID, system.TITLE)])
    )


def memory_utilisation() -> Panel:
    return (
        stat(
            "Memory utilisation",
            "Host memory in use (1 - available / total); HostMemoryUtilizationHigh fires above "
            "90 %.",
            "percentunit",
            red_above(HOST_MEMORY_UTILIZATION_HIGH_RATIO, orange=0.7))
        .min(0)
        .max(1)
        .with_target(query(
            f"instance:system_memory_utilization:ratio{{{INSTANCES}}}",
            "{{instance}}"))
        .links([detail_link(system.UID, system.TITLE)])
    )


def load_average_1_min() -> Panel:
    return (
        stat(
            "Load average (1 min)",
            "Runnable tasks averaged over one minute (the seed's load_average_1m).",
            "short")
        .decimals(2)
        .with_target(query(f"system_load1{{{INSTANCES}}}", "{{instance}}"))
        .links([detail_link(system.UID, system.TITLE)])
    )


def cpu_and_memory_utilisation() -> Panel:
    return (
        timeseries(
            "CPU and memory utilisation",
            "CPU and memory utilisation of the exporter's host over time.",
            "percentunit",
            red_above(HOST_CPU_UTILIZATION_HIGH_RATIO))
        .min(0)
        .max(1)
        .with_target(query(
            f"instance:system_cpu_utilization:ratio_rate5m{{{INSTANCES}}}",
            "CPU {{instance}}"))
        .with_target(query(
            f"instance:system_memory_utilization:ratio{{{INSTANCES}}}",
            "memory {{instance}}"))
    )


def swarm_availability() -> Panel:
    return (
        stat(
            "Swarm availability",
            "Share of reporting agents that are available (seed-004 swarm_availability_ratio); "
            "SwarmAvailabilityLow fires under 80 %.",
            "percentunit",
            red_below(SWARM_AVAILABILITY_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"job:agents_available:ratio{{{JOBS}}}", "{{job}}"))
        .links([detail_link(agents.UID, agents.TITLE)])
    )


def agents_available_known() -> Panel:
    return (
        stat(
            "Agents available / known",
            "Agents that report themselves available, and agents that have published a status "
            "event (seed-004 swarm_total_agents).",
            "short")
        .with_target(query(f"job:agents_available:count{{{JOBS}}}", "available"))
        .with_target(query(f"job:agents_known:count{{{JOBS}}}", "known"))
        .links([detail_link(agents.UID, agents.TITLE)])
    )


def busy_agents() -> Panel:
    return (
        stat(
            "Busy agents",
            "Agents whose last status is busy, and the size of the Redis set "
            "metrics:agents:active (seed 000 pattern 4).",
            "short")
        .with_target(query(f"job:agents_busy:count{{{JOBS}}}", "busy"))
        .with_target(query(f"sum(agent_active_agents{{{INSTANCES}}})", "active (Redis)"))
        .links([detail_link(agents.UID, agents.TITLE)])
    )


def queue_depth() -> Panel:
    return (
        stat(
            "Queue depth",
            "Tasks waiting in the agents' queues (seed-004 swarm_total_queue_depth).",
            "short")
        .with_target(query(f"job:agent_queue_depth:sum{{{JOBS}}}", "{{job}}"))
        .links([detail_link(agents.UID, agents.TITLE)])
    )


def load_imbalance_10_min() -> Panel:
    return (
        stat(
            "Load imbalance (10 min)",
            "Largest deviation of one agent's task count from the mean, on 10-minute averages "
            "(seed 000 load variance); AgentLoadImbalanced fires above 30 %.",
            "percentunit",
            red_above(LOAD_IMBALANCE_RATIO))
        .with_target(query(
            f"job:agent_current_tasks:max_deviation_ratio_avg10m{{{JOBS}}}",
            "{{job}}"))
        .links([detail_link(agents.UID, agents.TITLE)])
    )


def mean_agent_load() -> Panel:
    return (
        stat(
            "Mean agent load",
            "Self-reported load averaged over the agents (seed-004 swarm_avg_load).",
            "percentunit",
            red_above(0.9, orange=0.75))
        .min(0)
        .max(1)
        .with_target(query(f"job:agent_load_ratio:avg{{{JOBS}}}", "{{job}}"))
        .links([detail_link(agents.UID, agents.TITLE)])
    )


def success_ratio_per_agent_1_h() -> Panel:
    return (
        stat(
            "Success ratio per agent (1 h)",
            "The seed-004 agent grid: done / (done + failed) per agent over one hour. "
            "AgentErrorRateHigh fires when an agent fails more than 25 % (success under 75 %).",
            "percentunit",
            red_below(0.75, orange=0.9))
        .min(0)
        .max(1)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.CENTER)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .with_target(query(f"agent:agent_tasks_success:ratio_rate1h{{{JOBS}}}", "{{agent}}"))
        .links([detail_link(agents.UID, agents.TITLE),
                detail_link(agents.UID, agents.RANKING, agents.panel_id(agents.RANKING))])
    )


def agent_availability_10_least_available() -> Panel:
    return (
        states(
            "Agent availability (10 least available)",
            "Which agents could take work, over time: at each moment the ten least available, "
            "unavailable ones first (agent_available per agent).",
            value_texts((1, "available", "green"), (0, "unavailable", "red")),
            red_below(1))
        .with_target(query(
            f"bottomk(10, max by (agent) (agent_available{{{INSTANCES}}}))",
            "{{agent}}"))
        .links([detail_link(agents.UID, agents.TITLE)])
    )


def llm_spend() -> Panel:
    return (
        stat(
            "LLM spend",
            "US dollars the agents spent on LLM calls in the last hour, a day at that pace, and "
            "the swarm's daily budget (LlmSwarmSpendOverBudget fires when the pace passes it).",
            llm.USD)
        .graph_mode(common.BigValueGraphMode.NONE)
        .orientation(common.VizOrientation.HORIZONTAL)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .with_target(query(f"sum(job:agent_llm_cost_usd:increase1h{{{JOBS}}})", "last hour"))
        .with_target(query(f"sum(job:agent_llm_cost_usd:increase1h{{{JOBS}}}) * 24",
                           "per day at this pace"))
        .with_target(query(f"sum(job:agent_llm_swarm_daily_budget_usd:max{{{JOBS}}})",
                           "daily budget"))
        .links([detail_link(llm.UID, llm.TITLE)])
    )


def tasks_completed_1_h() -> Panel:
    return (
        stat(
            "Tasks completed (1 h)",
            "Tasks with status done in the last hour (seed 000 throughput); TaskThroughputLow "
            "fires under 10.",
            "short",
            red_below(TASK_THROUGHPUT_MIN_PER_HOUR))
        .decimals(0)
        .with_target(query(f"job:agent_tasks_completed:increase1h{{{JOBS}}}", "{{job}}"))
        .links([detail_link(tasks.UID, tasks.TITLE)])
    )


def sla_compliance_1_h() -> Panel:
    return (
        stat(
            "SLA compliance (1 h)",
            "Share of tasks that finished within the 1800 s SLA in the last hour; "
            "TaskSlaComplianceLow fires under 90 %.",
            "percentunit",
            red_below(TASK_SLA_COMPLIANCE_RATIO, orange=TASK_SLO_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"job:agent_task_sla_compliance:ratio_rate1h{{{JOBS}}}", "{{job}}"))
        .links([detail_link(tasks.UID, tasks.TITLE)])
    )


def error_budget_left_1_d() -> Panel:
    return (
        stat(
            "Error budget left (1 d)",
            "Task SLO 99 % within 1800 s: the share of the error budget the last day left "
            "unspent (1 - error ratio / 1 %); negative means overspent.",
            "percentunit",
            red_below(0, orange=0.5))
        .max(1)
        .with_target(query(
            f"1 - job:agent_task_sla_errors:ratio_rate1d{{{JOBS}}} / {tasks.ERROR_BUDGET}",
            "{{job}}"))
        .links([detail_link(tasks.UID, tasks.TITLE)])
    )


def task_success_ratio_5_min() -> Panel:
    return (
        stat(
            "Task success ratio (5 min)",
            "done / (done + failed) for the whole swarm over 5 minutes.",
            "percentunit",
            red_below(0.75, orange=0.9))
        .min(0)
        .max(1)
        .with_target(query(f"job:agent_tasks_success:ratio_rate5m{{{JOBS}}}", "{{job}}"))
        .links([detail_link(tasks.UID, tasks.TITLE)])
    )


def rag_p95_latency() -> Panel:
    return (
        stat(
            "RAG p95 latency",
            "95th percentile RAG query latency over 5 minutes; RagLatencyHigh fires above 2.5 s.",
            "s",
            red_above(RAG_LATENCY_P95_SECONDS, orange=1))
        .with_target(query(f"job:rag_query_duration_seconds:p95_5m{{{JOBS}}}", "{{job}}"))
        .links([detail_link(rag.UID, rag.TITLE)])
    )


def rag_success_ratio() -> Panel:
    return (
        stat(
            "RAG success ratio",
            "Queries answered (success or fallback) over all queries, 5 minutes; "
            "RagSuccessRatioLow fires under 90 %.",
            "percentunit",
            red_below(RAG_SUCCESS_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"job:rag_queries_success:ratio_rate5m{{{JOBS}}}", "{{job}}"))
        .links([detail_link(rag.UID, rag.TITLE)])
    )


def rag_cache_hit_ratio() -> Panel:
    return (
        stat(
            "RAG cache hit ratio",
            "Cache hits over cache lookups, 5 minutes; RagCacheHitRatioLow fires under 20 %.",
            "percentunit",
            red_below(RAG_CACHE_HIT_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"job:rag_cache_hit:ratio_rate5m{{{JOBS}}}", "{{job}}"))
        .links([detail_link(rag.UID, rag.TITLE)])
    )


def rag_latency_success_and_cache_hits() -> Panel:
    return (
        timeseries(
            "RAG latency, success and cache hits",
            "The seed-004 RAG widget: mean query time (left axis), success and cache-hit "
            "ratios (right axis).",
            "s")
        .override_by_query("B", right_axis_ratio())
        .override_by_query("C", right_axis_ratio())
        .with_target(query(f"job:rag_query_duration_seconds:mean5m{{{JOBS}}}", "mean latency"))
        .with_target(query(f"job:rag_queries_success:ratio_rate5m{{{JOBS}}}", "success ratio"))
        .with_target(query(f"job:rag_cache_hit:ratio_rate5m{{{JOBS}}}", "cache hit ratio"))
        .links([detail_link(rag.UID, rag.TITLE)])
    )


def rag_queries_per_second() -> Panel:
    return (
        stat(
            "RAG queries per second",
            "RAG queries per second over 5 minutes, all outcomes.",
            "reqps")
        .with_target(query(f"job:rag_queries:rate5m{{{JOBS}}}", "{{job}}"))
        .links([detail_link(rag.UID, rag.TITLE)])
    )


def low_confidence_answers() -> Panel:
    return (
        stat(
            "Low-confidence answers",
            "Share of answers with confidence 0.5 or less over 5 minutes; RagLowConfidenceHigh "
            "fires above 30 % per source.",
            "percentunit",
            red_above(RAG_LOW_CONFIDENCE_MAX_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"job:rag_confidence_low:ratio_rate5m{{{JOBS}}}", "{{job}}"))
        .links([detail_link(rag.UID, rag.TITLE)])
    )


def rag_mean_latency() -> Panel:
    return (
        stat(
            "RAG mean latency",
            "Mean RAG query latency over 5 minutes (seed-004 rag_avg_query_time).",
            "s")
        .with_target(query(f"job:rag_query_duration_seconds:mean5m{{{JOBS}}}", "{{job}}"))
        .links([detail_link(rag.UID, rag.TITLE)])
    )


def training_status_per_project() -> Panel:
    return (
        training.project_table(
            "Training status per project",
            "Each project's status from Redis (context:project:<id>), with its latest step, "
            "loss and WER and the age of its last progress event.",
            INSTANCES, trend=False)
        .links([detail_link(training.UID, training.TITLE)])
    )


def gpus_in_use() -> Panel:
    return (
        stat(
            "GPUs in use",
            "GPUs NVML sees on the exporters' hosts, GPUs that remote hosts report through Redis "
            "(metrics:gpu:current), and those of both more than 5 % busy. 0 everywhere means no "
            "GPU reported.",
            "short")
        .decimals(0)
        .no_value("No GPU reported")
        .graph_mode(common.BigValueGraphMode.NONE)
        .orientation(common.VizOrientation.HORIZONTAL)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .with_target(query(f"sum(gpu_count{{{INSTANCES}}}) or vector(0)", "GPUs (NVML)"))
        .with_target(query(
            f"count(gpu:gpu_utilization_ratio:any_source{{{INSTANCES}}} > 0.05) or vector(0)",
            "busy > 5 %"))
        .with_target(query(
            f"count(gpu_reported_utilization_ratio{{{INSTANCES}}}) or vector(0)",
            "reported via Redis"))
        .links([detail_link(gpu.UID, gpu.TITLE)])
    )


def firing_alerts() -> Panel:
    return (
        table(
            "Firing alerts",
            'Alerts firing now in Prometheus (ALERTS{alertstate="firing"}), from every rule '
            'file. Watchdog always fires: its absence means the alerting pipeline is broken. '
            'AgentPerformanceRanking (info) carries the agent ranking while agents finish tasks.',
            "none")
        .sort_by(sorted_by("severity", descending=False))
        .with_target(table_query('ALERTS{alertstate="firing"}'))
        .with_transformation(organize(
            {},
            hide=("Value", "alertstate"),
            order=("alertname", "severity", "category")))
    )


def firing_alerts_by_severity() -> Panel:
    return (
        timeseries(
            "Firing alerts by severity",
            "How many alerts fired at each severity over the selected range (seed-004 Recent "
            "Alerts).",
            "short")
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .stacking(sdk_common.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
        .decimals(0)
        .with_target(query('count by (severity) (ALERTS{alertstate="firing"})', "{{severity}}"))
    )


# -- seed 004's user-experience collector (records mapped by examples/seed-004-records.yml) ----

def user_response_time_p95() -> Panel:
    return (
        timeseries(
            "User response time p95",
            "95th percentile time from a user's request to the complete answer, and to the "
            "first part of it.",
            "s")
        .min(0)
        .with_target(query(
            histogram_p95("user_response_duration_seconds", INSTANCES),
            "complete answer"))
        .with_target(query(
            histogram_p95("user_first_response_duration_seconds", INSTANCES),
            "first response"))
    )


def satisfied_ratings() -> Panel:
    return (
        stat(
            "Satisfied ratings",
            "Share of user ratings of 4 or 5 stars (0.8 or more of the best rating); the "
            "bucket le=0.7 holds the ratings of 1 to 3 stars.",
            "percentunit",
            red_below(0.6, orange=0.8))
        .min(0)
        .max(1)
        .with_target(query(
            f"1 - sum(rate(user_satisfaction_ratio_bucket{{{INSTANCES}, le=\"0.7\"}}"
            "[$__rate_interval]))"
            f" / sum(rate(user_satisfaction_ratio_count{{{INSTANCES}}}[$__rate_interval]))",
            "4-5 stars"))
    )


def user_sessions() -> Panel:
    return (
        stat("User sessions", "User sessions open now (user_active_sessions).", "short")
        .decimals(0)
        .with_target(query(f"sum(user_active_sessions{{{INSTANCES}}})", "open"))
    )


def user_feedback_per_hour() -> Panel:
    return (
        timeseries(
            "User feedback per hour",
            "Feedback users gave, per hour at the current pace, by sentiment.",
            "short")
        .min(0)
        .with_target(query(
            "sum by (sentiment) "
            f"(rate(user_feedback_total{{{INSTANCES}}}[$__rate_interval])) * 3600",
            "{{sentiment}}"))
    )


def abandoned_sessions_per_hour() -> Panel:
    return (
        timeseries(
            "Abandoned sessions per hour",
            "Sessions users left before an answer came, per hour at the current pace.",
            "short")
        .min(0)
        .with_target(query(
            f"sum(rate(user_abandoned_sessions_total{{{INSTANCES}}}[$__rate_interval])) * 3600",
            "abandoned"))
    )
