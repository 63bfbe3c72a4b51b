"""LLM calls (`events:llm:calls`): tokens, latency and cost per agent, named after OpenTelemetry's
GenAI semantic conventions (v1.41.0) so the series read like those of OTel-instrumented services.

One event per call: {agent, provider, model, responseModel?, operation, input_tokens,
output_tokens, cached_input_tokens?, duration_seconds, time_to_first_token_seconds?, status
("ok" | "error"), error_type?, cost_usd?}. Label names are the OTel attributes with `_` for `.`;
bucket edges are the conventions' advisory boundaries. As in OTel, input tokens include the
cached ones. A failed call needs no token counts (a rejected call has no usage); without
`error_type` it is counted as OTel's fallback `_OTHER`. Cost is the event's `cost_usd`, else the
tokens at the price of the response model, else of the request model, from the config's price
table; a call with tokens and neither is counted as unpriced, never as free (a call without
tokens or cost has nothing to price).
"""
from __future__ import annotations

from ..events import Invalid, label, number
from .base import Context
from .llm_settings import LlmSettings, Price

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0)
OTHER_ERROR = "_OTHER"  # OTel's error.type when the instrumentation knows no better

OPERATION = ["agent", "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
MODEL = ["agent", "gen_ai_provider_name", "gen_ai_request_model"]


def tokens(event: dict, name: str, required: bool) -> float | None:
    """A token count: a whole number, at least 0."""
    count = number(event, name, required=required, minimum=0)
    if count is not None and not count.is_integer():
        raise Invalid("bad_type", f"{name} must be a whole number, got {count}")
    return count


class LlmCalls:
    name = "llm"

    def __init__(self, ctx: Context, settings: LlmSettings) -> None:
        family = ctx.family
        self.lock = ctx.store.lock
        self.limit = ctx.max_label_length
        self.tokens = family("gen_ai_client_token_usage", "histogram",
                             "Tokens per LLM call by type, input (cached included) or output "
                             "(OTel gen_ai.client.token.usage).", [*OPERATION, "gen_ai_token_type"],
                             TOKEN_BUCKETS)
        self.duration = family("gen_ai_client_operation_duration_seconds", "histogram",
                               "LLM call duration; error_type set when the call failed (OTel "
                               "gen_ai.client.operation.duration).", [*OPERATION, "error_type"],
                               DURATION_BUCKETS)
        self.ttft = family("gen_ai_server_time_to_first_token_seconds", "histogram",
                           "Time to the first token of successful LLM calls that report it (OTel "
                           "gen_ai.server.time_to_first_token).", OPERATION, TTFT_BUCKETS)
        self.requests = family("agent_llm_requests_total", "counter",
                               "LLM calls by outcome (the event's status: ok or error).",
                               [*MODEL, "outcome"])
        self.cost = family("agent_llm_cost_usd_total", "counter",
                           "LLM spend in US dollars: the call's cost_usd, else its tokens at the "
                           "configured price of the model.", MODEL)
        self.cached = family("agent_llm_cache_read_input_tokens_total", "counter",
                             "Input tokens served from the provider's prompt cache (part of the "
                             "input tokens; OTel gen_ai.usage.cache_read.input_tokens).", MODEL)
        self.unpriced = family("agent_llm_unpriced_requests_total", "counter",
                               "LLM calls without cost_usd whose model has no price in the "
                               "config (llm.prices): their spend is missing from "
                               "agent_llm_cost_usd_total.", MODEL)
        # The budgets come from the config, not from events: set on start-up and SIGHUP, kept
        # while the config says so, never checkpointed. An agent without its own budget has
        # each_agent's; the recording rules apply it to every agent that spends.
        self.budgets = [
            family("agent_llm_daily_budget_usd", "gauge",
                   "An agent's own daily LLM budget in US dollars "
                   "(llm.daily_budget_usd.agents).", ["agent"]),
            family("agent_llm_each_agent_daily_budget_usd", "gauge",
                   "The daily LLM budget in US dollars of every agent without its own "
                   "(llm.daily_budget_usd.each_agent)."),
            family("agent_llm_swarm_daily_budget_usd", "gauge",
                   "The swarm's daily LLM budget in US dollars (llm.daily_budget_usd.swarm)."),
        ]
        for budget in self.budgets:
            budget.persist, budget.ttl = False, 0
        self.prices: dict[str, Price] = {}
        self.reload(settings)

    def reload(self, settings: LlmSettings) -> None:
        """New prices apply to the next call, new budgets at once."""
        configured = settings.daily_budget_usd
        agents, each_agent, swarm = self.budgets
        with self.lock:
            self.prices = dict(settings.prices)
            for budget in self.budgets:
                budget.series.clear()
            for agent, usd in configured.agents.items():
                agents.set((agent,), usd)
            for gauge, optional in ((each_agent, configured.each_agent),
                                     (swarm, configured.swarm)):
                if optional is not None:
                    gauge.set((), optional)

    def handle(self, event: dict, channel: str) -> None:
        limit = self.limit
        agent = label(event, "agent", limit)
        provider = label(event, "provider", limit)
        model = label(event, "model", limit)
        operation = label(event, "operation", limit)
        status = label(event, "status", limit)
        if status == "ok":
            failed, error_type = False, ""
        elif status == "error":
            failed, error_type = True, label(event, "error_type", limit, default=OTHER_ERROR)
        else:
            raise Invalid("bad_value", f"status must be ok or error, got {status[:40]!r}")
        input_tokens = tokens(event, "input_tokens", not failed)
        output_tokens = tokens(event, "output_tokens", not failed)
        cached_tokens = tokens(event, "cached_input_tokens", False)
        if cached_tokens is not None and cached_tokens > (input_tokens or 0):
            raise Invalid("out_of_range", "cached_input_tokens exceeds input_tokens")
        duration = number(event, "duration_seconds", required=True, minimum=0)
        first_token = number(event, "time_to_first_token_seconds", minimum=0, maximum=duration)
        cost = number(event, "cost_usd", minimum=0)
        needs_price = cost is None and (input_tokens is not None or output_tokens is not None)
        price = None
        if needs_price:
            response_model = label(event, "responseModel", limit, required=False)
            price = self.prices.get(response_model) or self.prices.get(model)

        model_key = (agent, provider, model)
        if input_tokens is not None:
            self.tokens.observe((agent, operation, provider, model, "input"), input_tokens)
        if output_tokens is not None:
            self.tokens.observe((agent, operation, provider, model, "output"), output_tokens)
        if cached_tokens:
            self.cached.inc(model_key, cached_tokens)
        self.duration.observe((agent, operation, provider, model, error_type), duration)
        if first_token is not None and not failed:
            self.ttft.observe((agent, operation, provider, model), first_token)
        self.requests.inc((agent, provider, model, status))
        if price is not None:
            cost = price.cost(input_tokens or 0.0, output_tokens or 0.0, cached_tokens or 0.0)
        if cost is not None:
            self.cost.inc(model_key, cost)
        elif needs_price:
            self.unpriced.inc(model_key)
