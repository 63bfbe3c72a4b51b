"""The LLM usage & cost dashboard (agent-exporter-llm): spend against the configured budgets,
tokens, latency, errors and rate limits, in OpenTelemetry's GenAI names.

Recorded series keep one level each (`agent:`, `model:`, `provider:`, `job:`), so a panel
filters only by the labels its level keeps: agent panels by Agent, model panels by Provider and
Model.
"""
from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from exporter.thresholds import (
    LLM_BUDGET_BURN_RATE,
    LLM_LATENCY_P95_SECONDS,
    LLM_PROVIDER_ERROR_RATIO_HIGH,
    LLM_RATE_LIMITED_RATIO_HIGH,
    LLM_TIME_TO_FIRST_TOKEN_P95_SECONDS,
)

from .dashboard import dashboard, row
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
from .queries import JOB, JOBS, Filter, heatmap_query, query, selector, table_query

UID = "agent-exporter-llm"
TITLE = "Agent Exporter · LLM usage & cost"
USD = "currencyUSD"
CALLS = "agent_llm_requests_total"
AGENT = Filter("agent", "Agent", f"{CALLS}{{{selector(JOB)}}}")
PROVIDER = Filter("provider", "Provider", f"{CALLS}{{{selector(JOB)}}}", "gen_ai_provider_name")
MODEL = Filter("model", "Model", f"{CALLS}{{{selector(JOB, PROVIDER)}}}", "gen_ai_request_model")
AGENTS = selector(JOB, AGENT)
MODELS = selector(JOB, PROVIDER, MODEL)
PROVIDERS = selector(JOB, PROVIDER)
CALLS_SELECTED = selector(JOB, AGENT, PROVIDER, MODEL)  # raw series carry every label
MODEL_LEGEND = "{{gen_ai_provider_name}} {{gen_ai_request_model}}"


def build() -> Dashboard:
    return dashboard(
        UID, TITLE,
        "What the agents spend on LLM calls against the configured daily budgets, their "
        "tokens, latency, errors and rate limits (OpenTelemetry GenAI metrics).",
        ["llm", "cost"], [JOB, AGENT, PROVIDER, MODEL],
        [
            row("Spend"),
            spend_last_24_h(),
            spend_last_hour(),
            projected_daily_spend(),
            swarm_daily_budget(),
            swarm_budget_burn_rate(),
            unpriced_calls(),
            spend_per_hour_by_agent_top_10(),
            spend_per_hour_by_model(),
            budget_burn_rate_per_agent(),
            swarm_budget_burn_rates(),
            agents().height(9),
            row("Tokens"),
            tokens_per_second_by_agent_top_10(),
            tokens_per_second_by_model(),
            prompt_cache_share(),
            input_tokens_per_call(),
            row("Latency"),
            p95_call_duration_by_model(),
            p95_time_to_first_token_by_model(),
            call_duration_heatmap().span(24),
            row("Errors and rate limits"),
            error_ratio_by_provider(),
            rate_limited_share_by_provider(),
            failed_calls_by_error_type(),
            calls_per_second_by_provider(),
        ])


def spend_last_24_h() -> Panel:
    return (
        stat("Spend, last 24 h", "US dollars spent on LLM calls in the last 24 hours.", USD)
        .with_target(query(f"sum(agent:agent_llm_cost_usd:increase1d{{{AGENTS}}})", "24 h"))
    )


def spend_last_hour() -> Panel:
    return (
        stat("Spend, last hour", "US dollars spent on LLM calls in the last hour.", USD)
        .with_target(query(f"sum(agent:agent_llm_cost_usd:increase1h{{{AGENTS}}})", "1 h"))
    )


def projected_daily_spend() -> Panel:
    return (
        stat(
            "Projected daily spend",
            "The last hour's spend kept up for 24 hours: what a day at this pace costs.",
            USD)
        .with_target(query(f"sum(agent:agent_llm_cost_usd:increase1h{{{AGENTS}}}) * 24",
                           "per day"))
    )


def swarm_daily_budget() -> Panel:
    return (
        stat(
            "Swarm daily budget",
            "The swarm's daily LLM budget from the exporter's config "
            "(llm.daily_budget_usd.swarm).",
            USD)
        .with_target(query(f"job:agent_llm_swarm_daily_budget_usd:max{{{JOBS}}}", "{{job}}"))
    )


def swarm_budget_burn_rate() -> Panel:
    return (
        stat(
            "Swarm budget burn rate (1 h)",
            "The last hour's spend kept up for a day, over the swarm's daily budget; "
            "LlmSwarmSpendOverBudget fires above 1 (with the 5-minute rate above 1 too).",
            "none",
            red_above(LLM_BUDGET_BURN_RATE, orange=0.8))
        .decimals(2)
        .with_target(query(f"job:agent_llm_swarm_daily_budget:burn_rate1h{{{JOBS}}}", "{{job}}"))
    )


def unpriced_calls() -> Panel:
    return (
        stat(
            "Unpriced calls",
            "Calls per minute without cost_usd whose model has no price in the config "
            "(llm.prices): their spend is missing above. 0 is right.",
            "cpm",
            red_above(0.001))
        .with_target(query(
            f"sum(rate(agent_llm_unpriced_requests_total{{{CALLS_SELECTED}}}[$__rate_interval]))"
            " * 60 or vector(0)", "calls/min"))
    )


def spend_per_hour_by_agent_top_10() -> Panel:
    return (
        timeseries(
            "Spend per hour by agent (top 10)",
            "US dollars each agent spent in the last hour, for the ten spending most at each "
            "moment. Every agent: the table below.",
            USD)
        .with_target(query(f"topk(10, agent:agent_llm_cost_usd:increase1h{{{AGENTS}}})",
                           "{{agent}}"))
    )


def spend_per_hour_by_model() -> Panel:
    return (
        timeseries("Spend per hour by model", "US dollars spent on each model in the last hour.",
                   USD)
        .with_target(query(f"model:agent_llm_cost_usd:increase1h{{{MODELS}}}", MODEL_LEGEND))
    )


def budget_burn_rate_per_agent() -> Panel:
    return (
        timeseries(
            "Budget burn rate per agent",
            "Each agent's last hour of spend kept up for a day, over its daily budget (agents "
            "with a budget); LlmAgentSpendOverBudget fires above 1 with the 5-minute rate above "
            "1 too.",
            "none",
            red_above(LLM_BUDGET_BURN_RATE))
        .min(0)
        .with_target(query(f"agent:agent_llm_daily_budget:burn_rate1h{{{AGENTS}}}", "{{agent}}"))
    )


def swarm_budget_burn_rates() -> Panel:
    return (
        timeseries(
            "Swarm budget burn rates",
            "The swarm's spend over 1 hour and over 5 minutes, each kept up for a day, over its "
            "daily budget; LlmSwarmSpendOverBudget fires when both stay above 1.",
            "none",
            red_above(LLM_BUDGET_BURN_RATE))
        .min(0)
        .with_target(query(f"job:agent_llm_swarm_daily_budget:burn_rate1h{{{JOBS}}}", "1 h"))
        .with_target(query(f"job:agent_llm_swarm_daily_budget:burn_rate5m{{{JOBS}}}", "5 min"))
    )


def agents() -> Panel:
    return (
        table(
            "Agents",
            "One row per agent that calls LLMs: spend in the last 24 hours and hour, its daily "
            "budget and burn rate (LlmAgentSpendOverBudget above 1), calls and tokens per "
            "second.",
            "short")
        .sort_by(sorted_by("Spend (24 h)", descending=True))
        .override_by_name("Spend (24 h)", cell(USD))
        .override_by_name("Spend (1 h)", cell(USD))
        .override_by_name("Daily budget", cell(USD))
        .override_by_name("Burn rate (1 h)",
                          cell("none", red_above(LLM_BUDGET_BURN_RATE, orange=0.8), decimals=2))
        .override_by_name("Calls", cell("reqps"))
        .with_target(table_query(f"max by (agent) (agent:agent_llm_cost_usd:increase1d{{{AGENTS}}})"))
        .with_target(table_query(f"max by (agent) (agent:agent_llm_cost_usd:increase1h{{{AGENTS}}})"))
        .with_target(table_query(f"max by (agent) (agent:agent_llm_daily_budget_usd:max{{{AGENTS}}})"))
        .with_target(table_query(
            f"max by (agent) (agent:agent_llm_daily_budget:burn_rate1h{{{AGENTS}}})"))
        .with_target(table_query(
            f"sum by (agent) (rate({CALLS}{{{AGENTS}}}[$__rate_interval]))"))
        .with_target(table_query(
            f'max by (agent) (agent:gen_ai_client_token_usage:rate5m{{{AGENTS}, '
            f'gen_ai_token_type="input"}})'))
        .with_target(table_query(
            f'max by (agent) (agent:gen_ai_client_token_usage:rate5m{{{AGENTS}, '
            f'gen_ai_token_type="output"}})'))
        .with_transformation(merge())
        .with_transformation(organize(
            {
                "agent": "Agent",
                "Value #A": "Spend (24 h)",
                "Value #B": "Spend (1 h)",
                "Value #C": "Daily budget",
                "Value #D": "Burn rate (1 h)",
                "Value #E": "Calls",
                "Value #F": "Input tokens/s",
                "Value #G": "Output tokens/s",
            }))
    )


def tokens_per_second_by_agent_top_10() -> Panel:
    return (
        timeseries(
            "Tokens per second by agent (top 10)",
            "Input (cached included) and output tokens per second of the ten agents using most "
            "at each moment.",
            "short")
        .with_target(query(f"topk(10, agent:gen_ai_client_token_usage:rate5m{{{AGENTS}}})",
                           "{{agent}} {{gen_ai_token_type}}"))
    )


def tokens_per_second_by_model() -> Panel:
    return (
        timeseries("Tokens per second by model",
                   "Input (cached included) and output tokens per second per model.", "short")
        .with_target(query(f"model:gen_ai_client_token_usage:rate5m{{{MODELS}}}",
                           f"{MODEL_LEGEND} {{{{gen_ai_token_type}}}}"))
    )


def prompt_cache_share() -> Panel:
    return (
        timeseries(
            "Prompt cache share",
            "Share of the input tokens served from the providers' prompt caches, per model "
            "(cached input tokens cost less: see llm.prices cached_input).",
            "percentunit")
        .min(0)
        .max(1)
        .with_target(query(f"model:agent_llm_cache_read_input_tokens:ratio_rate5m{{{MODELS}}}",
                           MODEL_LEGEND))
    )


def input_tokens_per_call() -> Panel:
    return (
        heatmap("Input tokens per call",
                "Calls per bucket of input tokens (the conventions' buckets, x4 each).", "short")
        .with_target(heatmap_query(
            f'sum by (le) (increase(gen_ai_client_token_usage_bucket{{{CALLS_SELECTED}, '
            f'gen_ai_token_type="input"}}[$__rate_interval]))'))
    )


def p95_call_duration_by_model() -> Panel:
    return (
        timeseries(
            "p95 call duration by model",
            "95th percentile duration of each model's successful calls over 5 minutes; "
            "LlmLatencyHigh fires above 30 s.",
            "s",
            red_above(LLM_LATENCY_P95_SECONDS))
        .with_target(query(f"model:gen_ai_client_operation_duration_seconds:p95_5m{{{MODELS}}}",
                           MODEL_LEGEND))
    )


def p95_time_to_first_token_by_model() -> Panel:
    return (
        timeseries(
            "p95 time to first token by model",
            "95th percentile time to the first token of each model's successful calls over 5 "
            "minutes; LlmTimeToFirstTokenHigh fires above 5 s.",
            "s",
            red_above(LLM_TIME_TO_FIRST_TOKEN_P95_SECONDS))
        .with_target(query(f"model:gen_ai_server_time_to_first_token_seconds:p95_5m{{{MODELS}}}",
                           MODEL_LEGEND))
    )


def call_duration_heatmap() -> Panel:
    return (
        heatmap("Call duration heatmap",
                "Successful calls per duration bucket (0.01 s to 82 s, x2 each) over time.", "s")
        .with_target(heatmap_query(
            "sum by (le) "
            f"(model_le:gen_ai_client_operation_duration_seconds_bucket:rate5m{{{MODELS}}})"))
    )


def error_ratio_by_provider() -> Panel:
    return (
        timeseries(
            "Error ratio by provider",
            "Share of each provider's calls that failed over 5 minutes; "
            "LlmProviderErrorRatioHigh fires above 10 %.",
            "percentunit",
            red_above(LLM_PROVIDER_ERROR_RATIO_HIGH))
        .min(0)
        .max(1)
        .with_target(query(f"provider:agent_llm_requests_error:ratio_rate5m{{{PROVIDERS}}}",
                           "{{gen_ai_provider_name}}"))
    )


def rate_limited_share_by_provider() -> Panel:
    return (
        timeseries(
            "Rate-limited share by provider",
            "Share of each provider's calls refused for rate limiting (429, rate_limit, …) over "
            "5 minutes; LlmRateLimited fires above 5 %.",
            "percentunit",
            red_above(LLM_RATE_LIMITED_RATIO_HIGH))
        .min(0)
        .max(1)
        .with_target(query(
            f"provider:gen_ai_client_operation_rate_limited:ratio_rate5m{{{PROVIDERS}}}",
            "{{gen_ai_provider_name}}"))
    )


def failed_calls_by_error_type() -> Panel:
    return (
        timeseries("Failed calls by error type",
                   "Failed calls per minute by provider and error type (error.type).", "cpm")
        .with_target(query(
            "sum by (gen_ai_provider_name, error_type) (rate("
            f'gen_ai_client_operation_duration_seconds_count{{{CALLS_SELECTED}, error_type!=""}}'
            "[$__rate_interval])) * 60",
            "{{gen_ai_provider_name}} {{error_type}}"))
    )


def calls_per_second_by_provider() -> Panel:
    return (
        timeseries("Calls per second by provider", "LLM calls per second per provider, all "
                   "outcomes.", "reqps")
        .with_target(query(f"provider:agent_llm_requests:rate5m{{{PROVIDERS}}}",
                           "{{gen_ai_provider_name}}"))
    )
