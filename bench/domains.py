"""7. What one LLM call costs the exporter against one task update: in process, A/B.

Both kinds are pre-built payloads as the publisher sends them over pub/sub (timestamp, `_pub`,
`_seq`) from 200 agents: task updates with the benchmark mix's statuses and durations; LLM calls
to five models with token counts, cached input, time to first token and 2 % failures, priced
from the config's price table (no `cost_usd`: the dearer path). Each run applies N events
through the dispatcher (JSON parsing, validation, every metric update) in batches of 100, as a
pub/sub read delivers them, into a store a warm-up has filled with every series; runs alternate
between the kinds. No Redis and no sockets: the domain's own cost, per event.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import orjson

from exporter import contract
from exporter.dispatcher import Dispatcher
from exporter.domains import Context, create_domains
from exporter.domains.llm_settings import LlmSettings, Price
from exporter.store import Store

from .common import STATUSES, Result, Target, agent_names, median

BATCH = 100
MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4"),
          ("anthropic", "claude-3-5-haiku"), ("openai", "text-embedding-3-small"))
PRICES = LlmSettings(prices={model: Price(1.0, 4.0, 0.1) for _, model in MODELS})
ABOUT_THE_SAME = 1.5  # LLM call / task update, per event


def task_update(r: random.Random, agent: str) -> dict[str, Any]:
    status = r.choice(STATUSES)
    event: dict[str, Any] = {"taskId": f"t-{r.getrandbits(40):x}", "agent": agent,
                             "status": status}
    if status != "running":
        event["duration_seconds"] = round(r.lognormvariate(4.5, 1.0), 3)
    return event


def llm_call(r: random.Random, agent: str) -> dict[str, Any]:
    provider, model = r.choice(MODELS)
    event: dict[str, Any] = {"agent": agent, "provider": provider, "model": model,
                             "operation": "embeddings" if "embedding" in model else "chat",
                             "duration_seconds": round(r.lognormvariate(1.0, 0.6), 3)}
    if r.random() < 0.02:
        return {**event, "status": "error", "error_type": r.choice(("429", "timeout"))}
    prompt = round(r.lognormvariate(7.3, 0.6))
    return {**event, "status": "ok", "input_tokens": prompt, "output_tokens": r.randint(1, 800),
            "cached_input_tokens": prompt // 2 if r.random() < 0.7 else 0,
            "time_to_first_token_seconds": round(event["duration_seconds"] / 4, 3)}


def payloads(make: Any, n: int) -> list[bytes]:
    r = random.Random(1)
    agents = agent_names(200)
    out = []
    for seq in range(1, n + 1):
        event = make(r, r.choice(agents))
        out.append(orjson.dumps({**event, "timestamp": time.time(), "_pub": "bench", "_seq": seq}))
    return out


class Unapplied:
    """A domain that applies nothing: what JSON parsing and dispatch cost by themselves."""

    def __init__(self, name: str) -> None:
        self.name = name

    def handle(self, event: dict, channel: str) -> None:
        pass


def dispatcher(apply_events: bool) -> Dispatcher:
    store = Store()
    domains = create_domains(Context(store), llm=PRICES)
    return Dispatcher(store, {channel: domains[name] if apply_events else Unapplied(name)
                              for channel, name in contract.DEFAULT_CHANNELS.items()}, 65536)


def apply(target: Dispatcher, channel: str, messages: list[bytes]) -> float:
    """CPU seconds of this thread to dispatch every message, BATCH at a time (CPU time, not
    wall time: other processes on the machine then cost it little)."""
    start = time.thread_time()
    for i in range(0, len(messages), BATCH):
        target.dispatch_many(channel, channel, messages[i:i + BATCH], True)
    return time.thread_time() - start


def run(workdir: Path, quick: bool) -> Result:
    n, runs = (20_000, 3) if quick else (100_000, 7)
    kinds = {"task update": (contract.TASKS, payloads(task_update, n)),
             "LLM call": (contract.LLM, payloads(llm_call, n))}
    result = Result("domains", f"Per-event cost of a domain, in process ({n:,} events a run, "
                               f"median of {runs} alternating runs, CPU time)",
                    ["event", "payload bytes (mean)", "µs per event", "of which JSON and "
                     "dispatch", "of which the domain", "/ task update", "domain / task's"])
    targets = {(kind, applied): dispatcher(applied) for kind in kinds for applied in (True, False)}
    for (kind, _), target in targets.items():
        apply(target, *kinds[kind])  # warm-up: every series exists
    seconds: dict[tuple[str, bool], list[float]] = {key: [] for key in targets}
    for _ in range(runs):
        for key, target in targets.items():
            seconds[key].append(apply(target, *kinds[key[0]]))
    total = {kind: median(seconds[(kind, True)]) / n for kind in kinds}
    fixed = {kind: median(seconds[(kind, False)]) / n for kind in kinds}
    own = {kind: total[kind] - fixed[kind] for kind in kinds}
    for kind, (_, messages) in kinds.items():
        result.rows.append([kind, sum(map(len, messages)) / n, total[kind] * 1e6,
                            fixed[kind] * 1e6, own[kind] * 1e6,
                            total[kind] / total["task update"], own[kind] / own["task update"]])
    result.raw = {f"{kind}{'' if applied else ' (not applied)'}": values
                  for (kind, applied), values in seconds.items()}
    result.targets.append(Target("an LLM call costs about what a task update costs",
                                 total["LLM call"] / total["task update"], ABOUT_THE_SAME,
                                 "x a task update"))
    result.notes.append("A task update checks 3 fields and makes 2 metric updates (a counter "
                        "and a histogram); an LLM call checks 10 to 12 and makes 6 or 7 (four "
                        "histograms, two or three counters).")
    return result
