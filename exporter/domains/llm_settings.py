"""The `llm:` config section: the price table that turns a call's tokens into dollars when the
event carries no `cost_usd`, and the daily budgets the exporter exports for the spend alerts, so
a user sets a budget once, in the config, and the alert rules compare against it. Only the
LLM-calls domain is handed these; SIGHUP hands it new ones.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..validation import ConfigError, expect, expect_mapping, not_negative, positive

PER_TOKENS = 1_000_000  # prices are quoted in USD per million tokens


@dataclass(frozen=True)
class Price:
    """USD per million tokens. Cached input tokens are part of the input tokens (as OpenTelemetry
    counts them) and cost `cached_input` instead of `input`; without it, the input price."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, input_tokens: float, output_tokens: float, cached_tokens: float) -> float:
        cached = self.input if self.cached_input is None else self.cached_input
        return ((input_tokens - cached_tokens) * self.input + cached_tokens * cached
                + output_tokens * self.output) / PER_TOKENS


@dataclass(frozen=True)
class Budgets:
    """Daily spend budgets in USD: the whole swarm's, each agent's, and named agents' own."""

    swarm: float | None = None
    each_agent: float | None = None
    agents: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LlmSettings:
    prices: Mapping[str, Price] = field(default_factory=dict)
    daily_budget_usd: Budgets = field(default_factory=Budgets)


def _price(value: Any, key: str, origin: str) -> Price:
    expect_mapping(value, Price.__dataclass_fields__, key, origin)
    for required in ("input", "output"):
        if required not in value:
            raise ConfigError(f"{key}.{required}", "required (USD per million tokens; 0 for none)",
                              origin)
    return Price(**{name: float(not_negative(number, f"{key}.{name}", origin))
                    for name, number in value.items()})


def _budgets(value: Any, key: str, origin: str) -> Budgets:
    expect_mapping(value, Budgets.__dataclass_fields__, key, origin)
    out: dict[str, Any] = {name: float(positive(value[name], f"{key}.{name}", origin))
                           for name in ("swarm", "each_agent") if name in value}
    agents = expect(value.get("agents", {}), dict, f"{key}.agents", origin)
    out["agents"] = {str(agent): float(positive(budget, f"{key}.agents.{agent}", origin))
                     for agent, budget in agents.items()}
    return Budgets(**out)


def parse_llm(value: Any, key: str, origin: str) -> LlmSettings:
    """The `llm:` section: `prices` (model → price) and `daily_budget_usd`, checked key by key."""
    expect_mapping(value, LlmSettings.__dataclass_fields__, key, origin)
    prices = expect(value.get("prices", {}), dict, f"{key}.prices", origin)
    return LlmSettings(
        prices={str(model): _price(price, f"{key}.prices.{model}", origin)
                for model, price in prices.items()},
        daily_budget_usd=_budgets(value.get("daily_budget_usd", {}), f"{key}.daily_budget_usd",
                                  origin))
