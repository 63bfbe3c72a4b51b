"""The Agents & swarm dashboard (agent-exporter-agents)."""
from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    AGENT_ERROR_RATIO_HIGH,
    AGENT_NOT_SEEN_SECONDS,
    LOAD_IMBALANCE_RATIO,
    SWARM_AVAILABILITY_MIN_RATIO,
    TASK_SLA_SECONDS,
)

from .dashboard import dashboard, row
from .panels import (
    Panel,
    cell,
    merge,
    organize,
    red_above,
    red_below,
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
    Filter,
    histogram_p95,
    query,
    selector,
    table_query,
)

UID = "agent-exporter-agents"
TITLE = "Agent Exporter · Agents & swarm"
AGENT = Filter("agent", "Agent", f"agent_last_seen_timestamp_seconds{{{selector(JOB)}}}")
AGENTS = selector(JOB, INSTANCE, AGENT)
AGENTS_BY_JOB = selector(JOB, AGENT)


def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "Every agent of the swarm: state, load, success and latency, and how evenly the work "
        "is spread.",
        ["agents"], [JOB, INSTANCE, AGENT],
        [
            agents_known(),
            swarm_availability(),
            busy_agents(),
            active_agents_redis(),
            total_queue_depth(),
            tasks_in_progress(),
            agents().height(9),
            load_imbalance(),
            tasks_completed_per_agent_top_10(),
            current_tasks_per_agent_top_10(),
            queue_depth_per_agent_top_10(),
            error_ratio_per_agent_15_min_top_10(),
            p95_task_duration_per_agent_top_10(),
            agent_availability_10_least_available(),
            agent_load_top_10(),
            agent_ranking().height(9),
            row("Coordination"),
            coordination_messages_per_second(),
            coordination_latency_p95(),
            handoff_failure_ratio().span(8),
            conflicts_per_minute().span(8),
            coordination_sessions().span(8),
        ])


def agents_known() -> Panel:
    return (
        stat("Agents known", "Agents that have published a status event and not expired.", "short")
        .with_target(query(f"job:agents_known:count{{{JOBS}}}", "{{job}}"))
    )


def swarm_availability() -> Panel:
    return (
        stat(
            "Swarm availability",
            "Share of agents that are available; SwarmAvailabilityLow fires under 80 %.",
            "percentunit",
            red_below(SWARM_AVAILABILITY_MIN_RATIO))
        .min(0)
        .max(1)
        .with_target(query(f"job:agents_available:ratio{{{JOBS}}}", "{{job}}"))
    )


def busy_agents() -> Panel:
    return (
        stat("Busy agents", "Agents whose last status is busy.", "short")
        .with_target(query(f"job:agents_busy:count{{{JOBS}}}", "{{job}}"))
    )


def active_agents_redis() -> Panel:
    return (
        stat(
            "Active agents (Redis)",
            "Cardinality of the Redis set metrics:agents:active that agents maintain themselves.",
            "short")
        .with_target(query(f"sum(agent_active_agents{{{INSTANCES}}})", "active"))
    )


def total_queue_depth() -> Panel:
    return (
        stat("Total queue depth", "Tasks waiting in all agents' queues.", "short")
        .with_target(query(f"job:agent_queue_depth:sum{{{JOBS}}}", "{{job}}"))
    )


def tasks_in_progress() -> Panel:
    return (
        stat("Tasks in progress", "Tasks the agents hold now, summed over the swarm.", "short")
        .with_target(query(f"job:agent_current_tasks:sum{{{JOBS}}}", "{{job}}"))
    )


def agents() -> Panel:
    return (
        table(
            "Agents",
            "One row per agent: availability, busy flag, current tasks, queue depth, load, "
            "success ratio (1 h), error ratio (15 min; AgentErrorRateHigh above 25 %), p95 "
            "task duration (SLA 1800 s) and seconds since its last status event (AgentNotSeen "
            "after 300 s).",
            "short")
        .sort_by(sorted_by("Agent", descending=False))
        .override_by_name(
            "Available",
            cell("none", red_below(1), texts=value_texts((1, "available", "green"), (0, "unavailable", "red"))))
        .override_by_name(
            "Busy",
            cell("none", texts=value_texts((1, "busy", "orange"), (0, "idle", "green"))))
        .override_by_name("Current tasks", cell("none", decimals=0))
        .override_by_name("Queue depth", cell("none", red_above(20, orange=10), decimals=0))
        .override_by_name("Load", cell("percentunit", red_above(0.9, orange=0.75)))
        .override_by_name("Success (1 h)", cell("percentunit", red_below(0.75, orange=0.9)))
        .override_by_name("Errors (15 min)", cell("percentunit", red_above(AGENT_ERROR_RATIO_HIGH, orange=0.1)))
        .override_by_name("p95 task duration", cell("s", red_above(TASK_SLA_SECONDS, orange=TASK_SLA_SECONDS // 2)))
        .override_by_name("Last seen", cell("s", red_above(AGENT_NOT_SEEN_SECONDS, orange=60)))
        .with_target(table_query(f"max by (agent) (agent_available{{{AGENTS}}})"))
        .with_target(table_query(f"max by (agent) (agent_busy{{{AGENTS}}})"))
        .with_target(table_query(f"max by (agent) (agent_current_tasks{{{AGENTS}}})"))
        .with_target(table_query(f"max by (agent) (agent_queue_depth{{{AGENTS}}})"))
        .with_target(table_query(f"max by (agent) (agent_load_ratio{{{AGENTS}}})"))
        .with_target(table_query(
            f"max by (agent) (agent:agent_tasks_success:ratio_rate1h{{{AGENTS_BY_JOB}}})"))
        .with_target(table_query(
            f"max by (agent) (agent:agent_tasks_error:ratio_rate15m{{{AGENTS_BY_JOB}}})"))
        .with_target(table_query(
            f"max by (agent) (agent:agent_task_duration_seconds:p95_5m{{{AGENTS_BY_JOB}}})"))
        .with_target(table_query(
            f"min by (agent) (agent:agent_last_seen:age_seconds{{{AGENTS_BY_JOB}}})"))
        .with_transformation(merge())
        .with_transformation(organize(
            {
                "agent": "Agent",
                "Value #A": "Available",
                "Value #B": "Busy",
                "Value #C": "Current tasks",
                "Value #D": "Queue depth",
                "Value #E": "Load",
                "Value #F": "Success (1 h)",
                "Value #G": "Errors (15 min)",
                "Value #H": "p95 task duration",
                "Value #I": "Last seen",
            }))
    )


def load_imbalance() -> Panel:
    return (
        timeseries(
            "Load imbalance",
            "Largest |tasks(agent) - mean| / mean: instantaneous and on 10-minute averages "
            "(seed 000 load variance). AgentLoadImbalanced fires when the 10-minute value "
            "stays above 30 %.",
            "percentunit",
            red_above(LOAD_IMBALANCE_RATIO))
        .min(0)
        .with_target(query(f"job:agent_current_tasks:max_deviation_ratio{{{JOBS}}}", "now"))
        .with_target(query(
            f"job:agent_current_tasks:max_deviation_ratio_avg10m{{{JOBS}}}",
            "10 min average"))
    )


def tasks_completed_per_agent_top_10() -> Panel:
    return (
        timeseries(
            "Tasks completed per agent (top 10)",
            "Tasks finished with status done per minute (5-minute rate) for the ten busiest "
            "agents at each moment: who does the work? Every agent: the table above.",
            "opm")
        .with_target(query(
            f'topk(10, agent_status:agent_tasks:rate5m{{{AGENTS_BY_JOB}, status="done"}}) * 60',
            "{{agent}}"))
    )


def current_tasks_per_agent_top_10() -> Panel:
    return (
        timeseries(
            "Current tasks per agent (top 10)",
            "Tasks held now (taskCount of the status events) by the ten agents holding most at "
            "each moment.",
            "short")
        .decimals(0)
        .with_target(query(
            f"topk(10, max by (agent) (agent_current_tasks{{{AGENTS}}}))",
            "{{agent}}"))
    )


def queue_depth_per_agent_top_10() -> Panel:
    return (
        timeseries(
            "Queue depth per agent (top 10)",
            "Tasks waiting in the queue (queueDepth of the status events) of the ten agents "
            "with the longest queues at each moment.",
            "short")
        .decimals(0)
        .with_target(query(
            f"topk(10, max by (agent) (agent_queue_depth{{{AGENTS}}}))",
            "{{agent}}"))
    )


def error_ratio_per_agent_15_min_top_10() -> Panel:
    return (
        timeseries(
            "Error ratio per agent, 15 min (top 10)",
            "failed / (done + failed) over 15 minutes (seed-004 agent_error_rate) for the ten "
            "agents failing most at each moment; AgentErrorRateHigh fires above 25 % with at "
            "least 10 finished tasks.",
            "percentunit",
            red_above(AGENT_ERROR_RATIO_HIGH))
        .min(0)
        .max(1)
        .with_target(query(
            f"topk(10, agent:agent_tasks_error:ratio_rate15m{{{AGENTS_BY_JOB}}})",
            "{{agent}}"))
    )


def p95_task_duration_per_agent_top_10() -> Panel:
    return (
        timeseries(
            "p95 task duration per agent (top 10)",
            "95th percentile task duration over 5 minutes for the ten slowest agents at each "
            "moment; the task SLA is 1800 s.",
            "s",
            red_above(TASK_SLA_SECONDS))
        .with_target(query(
            f"topk(10, agent:agent_task_duration_seconds:p95_5m{{{AGENTS_BY_JOB}}})",
            "{{agent}}"))
    )


def agent_availability_10_least_available() -> Panel:
    return (
        states(
            "Agent availability (10 least available)",
            "Which agents could take work, over time: at each moment the ten least available "
            "(unavailable ones first). Every agent now: the table above.",
            value_texts((1, "available", "green"), (0, "unavailable", "red")),
            red_below(1))
        .with_target(query(
            f"bottomk(10, max by (agent) (agent_available{{{AGENTS}}}))",
            "{{agent}}"))
    )


def agent_load_top_10() -> Panel:
    return (
        timeseries(
            "Agent load (top 10)",
            "Self-reported load (1 = fully loaded) of the ten most loaded agents at each moment.",
            "percentunit",
            red_above(0.9))
        .min(0)
        .with_target(query(
            f"topk(10, max by (agent) (agent_load_ratio{{{AGENTS}}}))",
            "{{agent}}"))
    )


RANKING = "Agent ranking (24 h)"


def panel_id(title: str) -> int:
    """The id the dashboard gives its panel `title` (for links that open that panel alone)."""
    ids = [panel.id_val for panel in build().panels or [] if panel.title == title]
    if len(ids) != 1 or ids[0] is None:
        raise ValueError(f"{TITLE} has no single panel {title!r}")
    return ids[0]


def agent_ranking() -> Panel:
    return (
        table(
            RANKING,
            "Seed 000's ranking for the task-distributor, best first: score = tasks done x 10 - "
            "mean task duration (s) / 10 - failed tasks x 100, per agent over the last 24 hours "
            "(agent:agent_ranking_score:1d and the recording rules of its parts).",
            "short")
        .sort_by(sorted_by("Score", descending=True))
        .override_by_name("Score", cell("none", decimals=0))
        .override_by_name("Tasks done", cell("none", decimals=0))
        .override_by_name("Mean task duration", cell("s", red_above(TASK_SLA_SECONDS)))
        .override_by_name("Failed tasks", cell("none", red_above(1), decimals=0))
        .with_target(table_query(
            f"max by (agent) (agent:agent_ranking_score:1d{{{AGENTS_BY_JOB}}})"))
        .with_target(table_query(
            f"max by (agent) (agent:agent_tasks_completed:increase1d{{{AGENTS_BY_JOB}}})"))
        .with_target(table_query(
            f"max by (agent) (agent:agent_task_duration_seconds:mean1d{{{AGENTS_BY_JOB}}})"))
        .with_target(table_query(
            f"max by (agent) (agent:agent_tasks_failed:increase1d{{{AGENTS_BY_JOB}}})"))
        .with_transformation(merge())
        .with_transformation(organize(
            {
                "agent": "Agent",
                "Value #A": "Score",
                "Value #B": "Tasks done",
                "Value #C": "Mean task duration",
                "Value #D": "Failed tasks",
            },
            order=("agent", "Value #A", "Value #B", "Value #C", "Value #D")))
    )


# -- seed 004's coordination collector (records mapped by examples/seed-004-records.yml) -------

def coordination_messages_per_second() -> Panel:
    return (
        timeseries(
            "Coordination messages per second",
            "Messages the agents send each other through the coordination protocol, by type "
            "(coordination_messages_total).",
            "cps")
        .min(0)
        .with_target(query(
            "sum by (message_type) "
            f"(rate(coordination_messages_total{{{INSTANCES}}}[$__rate_interval]))",
            "{{message_type}}"))
    )


def coordination_latency_p95() -> Panel:
    return (
        timeseries(
            "Coordination latency p95",
            "95th percentile time from sending a coordination message to its delivery, and of "
            "the agents' consensus decisions.",
            "s")
        .min(0)
        .with_target(query(
            histogram_p95("coordination_message_latency_seconds", INSTANCES),
            "message delivery"))
        .with_target(query(
            histogram_p95("coordination_consensus_duration_seconds", INSTANCES),
            "consensus"))
    )


def handoff_failure_ratio() -> Panel:
    return (
        timeseries(
            "Handoff failure ratio",
            "Share of task handoffs between agents that failed (coordination_handoffs_total).",
            "percentunit")
        .min(0)
        .max(1)
        .with_target(query(
            "sum(rate(coordination_handoffs_total"
            f'{{{INSTANCES}, result="failed"}}[$__rate_interval]))'
            f" / sum(rate(coordination_handoffs_total{{{INSTANCES}}}[$__rate_interval]))",
            "failed"))
    )


def conflicts_per_minute() -> Panel:
    return (
        timeseries(
            "Conflicts per minute",
            "Conflicting claims on a task the protocol resolved, by how it resolved them.",
            "cpm")
        .min(0)
        .with_target(query(
            "sum by (resolution) "
            f"(rate(coordination_conflicts_total{{{INSTANCES}}}[$__rate_interval])) * 60",
            "{{resolution}}"))
    )


def coordination_sessions() -> Panel:
    return (
        timeseries(
            "Coordination sessions",
            "Coordination sessions open now (coordination_active_sessions).",
            "short")
        .min(0)
        .decimals(0)
        .with_target(query(f"sum(coordination_active_sessions{{{INSTANCES}}})", "open"))
    )
