"""The demo's LLM calls: busy agents call the models their type uses, with prompts of a few
thousand tokens, most of them reusing a cached prompt prefix. The demo sends no cost: the
exporter prices the calls from its price table, and the example configs price every model here
at its list price. Incidents (exporter/demo/incidents.py) switch the attributes marked
"incident" on and off.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..domains.llm_settings import Price
from ..publisher import Publisher
from .engine import Sim, lognormal


class Caller(Protocol):
    """What the calls need of an agent (world.Agent)."""

    id: str
    type: str
    running: dict
    silent: bool


@dataclass(frozen=True)
class Model:
    provider: str  # OpenTelemetry's gen_ai.provider.name
    name: str
    price: Price  # list price, USD per million tokens
    operation: str = "chat"
    output_tokens_per_second: float = 80.0
    first_token_seconds: float = 0.5  # median


LLM_MODELS = (
    Model("openai", "gpt-4o", Price(2.5, 10.0, 1.25), output_tokens_per_second=90,
          first_token_seconds=0.45),
    Model("openai", "gpt-4o-mini", Price(0.15, 0.6, 0.075), output_tokens_per_second=120,
          first_token_seconds=0.35),
    Model("openai", "text-embedding-3-small", Price(0.02, 0.0), operation="embeddings"),
    Model("anthropic", "claude-sonnet-4", Price(3.0, 15.0, 0.3), output_tokens_per_second=70,
          first_token_seconds=0.9),
    Model("anthropic", "claude-3-5-haiku", Price(0.8, 4.0, 0.08), output_tokens_per_second=110,
          first_token_seconds=0.5),
)
MODELS = {model.name: model for model in LLM_MODELS}
MODELS_BY_AGENT_TYPE = {
    "ai-engineer": ("claude-sonnet-4", "claude-sonnet-4", "gpt-4o-mini"),
    "data-engineer": ("gpt-4o-mini",),
    "ml-engineer": ("gpt-4o", "gpt-4o-mini"),
    "context-manager": ("text-embedding-3-small", "text-embedding-3-small", "claude-3-5-haiku"),
    "workflow-orchestrator": ("claude-3-5-haiku",),
    "error-coordinator": ("gpt-4o-mini", "claude-3-5-haiku"),
}
CALLS_PER_AGENT_SECOND = 1 / 15  # while the agent is busy
RUNAWAY_CALL_SECONDS = 5.0  # incident: the looping agent calls again every 5 s


class LlmCalls:
    """The swarm's LLM traffic. The class attributes are the healthy values."""

    failure_ratio = 0.004  # timeouts and 5xx, retried by the agents
    outage: str | None = None  # incident: this provider refuses (429) and fails calls

    def __init__(self, sim: Sim, pub: Publisher, rng: random.Random,
                 agents: Sequence[Caller]) -> None:
        self.sim, self.pub, self.rng, self.agents = sim, pub, rng, agents
        self.runaway: Caller | None = None  # incident: stuck in a loop, its context growing
        self._context = 0

    def start(self) -> None:
        self.sim.poisson(CALLS_PER_AGENT_SECOND * len(self.agents), self.rng, self.call)
        self.sim.every(RUNAWAY_CALL_SECONDS, self._runaway_call)

    def call(self) -> None:
        agent = self.rng.choice(self.agents)
        if agent.running and not agent.silent:
            self._publish(agent, MODELS[self.rng.choice(MODELS_BY_AGENT_TYPE[agent.type])])

    def set_runaway(self, agent: Caller | None) -> None:
        self.runaway, self._context = agent, 20_000

    def _runaway_call(self) -> None:
        if self.runaway is not None and not self.runaway.silent:
            self._context = min(self._context + 2_000, 120_000)
            self._publish(self.runaway, MODELS["gpt-4o"], self._context)

    def _publish(self, agent: Caller, model: Model, context: int | None = None) -> None:
        r = self.rng
        refused = model.provider == self.outage and r.random() < 0.5
        if refused or r.random() < self.failure_ratio:
            error = r.choice(("429", "429", "503", "429", "500")) if refused else \
                r.choice(("timeout", "500", "503"))
            self.pub.llm_call(agent.id, model.provider, model.name, model.operation,
                              round(r.uniform(0.05, 0.5) if error != "timeout" else 60.0, 3),
                              "error", error_type=error)
            return
        if model.operation == "embeddings":
            self.pub.llm_call(agent.id, model.provider, model.name, model.operation,
                              round(lognormal(r, 0.15, 0.4), 4),
                              input_tokens=round(lognormal(r, 400, 0.5)), output_tokens=0)
            return
        prompt = context or round(lognormal(r, 1500, 0.6))
        cached = round(prompt * r.uniform(0.3, 0.8)) if r.random() < 0.7 else 0
        output = max(1, round(lognormal(r, 250, 0.7)))
        first_token = lognormal(r, model.first_token_seconds, 0.35) + prompt / 50_000
        duration = first_token + output / model.output_tokens_per_second * lognormal(r, 1.0, 0.2)
        self.pub.llm_call(agent.id, model.provider, model.name, model.operation,
                          round(duration, 3), input_tokens=prompt, output_tokens=output,
                          cached_input_tokens=cached,
                          time_to_first_token_seconds=round(first_token, 3))
