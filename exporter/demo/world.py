"""The simulated world: a swarm of agents taking tasks, training runs, RAG queries, workflow
runs and seed-004 records, each publishing through the Publisher API. Incidents
(exporter/demo/incidents.py) switch the attributes marked "incident" on and off.
"""
from __future__ import annotations

import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field

from ..publisher import Publisher
from ..thresholds import SLOW_STEP_SECONDS, TASK_SLA_SECONDS
from .engine import Sim, lognormal
from .gpu_host import GpuHost
from .llm import LlmCalls
from .records import Seed004Collectors, origin

AGENT_TYPES = ("ai-engineer", "data-engineer", "ml-engineer", "context-manager",
               "workflow-orchestrator", "error-coordinator")
PROJECTS = ("proj-1", "proj-2", "proj-3")
RAG_SOURCES = ("docs", "code", "tickets")
WORKFLOWS: dict[str, tuple[tuple[str, float], ...]] = {  # (step, median seconds), in order
    "data-pipeline": (("extract", 40), ("validate", 15), ("transform", 120), ("load", 60)),
    "model-training": (("prepare-data", 90), ("train", 200), ("evaluate", 60), ("register", 5)),
    "code-review": (("analyze", 30), ("review", 150), ("test", 120), ("merge", 5)),
}
TASK_ERRORS = ("tool call timed out", "LLM rate limit exceeded", "invalid tool arguments",
               "context window exceeded")

SLOTS = 4                   # tasks an agent runs at once; more wait in its queue
UTILISATION = 0.75          # task arrivals as a share of the swarm's capacity
TASK_MEDIAN_SECONDS = 180.0
TASK_SIGMA = 0.85           # log-normal spread: about 1 task in 300 breaches the SLA
FAILURE_RATIO = 0.015
HEARTBEAT_SECONDS = 10
TRAINING_INTERVAL_SECONDS = 5
STEPS_PER_SECOND = 10
RECORDS_INTERVAL_SECONDS = 15
RUN_BREAK_SECONDS = 2700    # between two runs of a project: longer than the exporter's series TTL


@dataclass
class Task:
    id: str
    duration: float     # how long it runs
    failed: bool


@dataclass
class Agent:
    id: str
    type: str
    running: dict[str, Task] = field(default_factory=dict)
    queue: deque[Task] = field(default_factory=deque)
    done: int = 0
    failed: int = 0
    silent: bool = False    # incident: stopped publishing (crashed, network split)
    offline: bool = False   # incident: says it is unavailable (maintenance)
    broken: bool = False    # incident: fails most tasks, quickly


class Swarm:
    """Agents taking tasks from a distributor that picks the least-loaded live agent."""

    def __init__(self, sim: Sim, pub: Publisher, rng: random.Random, size: int) -> None:
        self.sim, self.pub, self.rng = sim, pub, rng
        self.agents = [Agent(f"{AGENT_TYPES[i % len(AGENT_TYPES)]}-{i // len(AGENT_TYPES) + 1}",
                             AGENT_TYPES[i % len(AGENT_TYPES)]) for i in range(size)]
        self.hot: Agent | None = None       # incident: most new tasks go to this agent
        self.sla_breach_ratio = 0.0         # incident: share of tasks finishing past the SLA
        self.burst = False                  # incident: a batch of short tasks arrives
        self._ids = itertools.count(1)
        mean = TASK_MEDIAN_SECONDS * math.exp(TASK_SIGMA ** 2 / 2)
        self.arrival_rate = UTILISATION * SLOTS * size / mean

    def start(self) -> None:
        for agent in self.agents:  # work already in flight when the demo starts
            for _ in range(self.rng.randint(1, SLOTS)):
                task = self._new_task(agent)
                self._begin(agent, task, remaining=self.rng.uniform(0, task.duration))
            self.status(agent)
        self.sim.every(HEARTBEAT_SECONDS, self.heartbeat)
        self.sim.poisson(self.arrival_rate, self.rng, self.arrive)
        self.sim.poisson(self.arrival_rate * 8, self.rng, self._burst_arrival)

    def heartbeat(self) -> None:
        for agent in self.agents:
            self.status(agent)

    def arrive(self, median: float = TASK_MEDIAN_SECONDS) -> None:
        agent = self._pick()
        if agent is None:
            return
        task = self._new_task(agent, median)
        if len(agent.running) < self._capacity(agent):
            self._begin(agent, task)
        else:
            agent.queue.append(task)
        self.status(agent)

    def transient_error(self) -> None:
        """A recoverable error (the agent retries): background noise on events:errors:*."""
        agent = self.rng.choice(self.agents)
        if not agent.silent:
            self.pub.error("transient", component=agent.type, error="LLM rate limit hit; retrying",
                           error_id=f"err-{self.rng.getrandbits(48):012x}")

    def _burst_arrival(self) -> None:
        if self.burst:  # a batch job of short tasks
            self.arrive(median=8.0)

    def status(self, agent: Agent) -> None:
        """The agent's status event, and the seed-000 state keys a monitor keeps from it."""
        if agent.silent:
            return
        busy = bool(agent.running)
        status = "offline" if agent.offline else "busy" if busy else "idle"
        self.pub.agent_status(agent.type, status, len(agent.running), agent_id=agent.id,
                              queue_depth=len(agent.queue),
                              load=round(len(agent.running) / SLOTS, 3),
                              available=not agent.offline)
        pipe = self.pub.redis.pipeline(transaction=False)
        (pipe.sadd if busy else pipe.srem)("metrics:agents:active", agent.id)
        pipe.hset(f"metrics:agent:{agent.id}:workload", "current_tasks", len(agent.running))
        pipe.execute()

    def set_silent(self, agent: Agent, silent: bool) -> None:
        agent.silent = silent
        if silent:
            self._hand_over(agent)
        self.status(agent)

    def set_offline(self, agent: Agent, offline: bool) -> None:
        agent.offline = offline
        if offline:
            self._hand_over(agent)
        self.status(agent)

    def _hand_over(self, agent: Agent) -> None:
        """The distributor moves a lost agent's tasks to the others (lost progress restarts)."""
        tasks = [*agent.running.values(), *agent.queue]
        agent.running.clear()
        agent.queue.clear()
        for task in tasks:
            target = self._pick()
            if target is not None:
                target.queue.append(task)
                self._drain(target)
                self.status(target)

    def _pick(self) -> Agent | None:
        if self.hot is not None and self.rng.random() < 0.7:
            return self.hot  # a skewed distributor; the rest still goes to the least loaded
        live = [a for a in self.agents if not (a.silent or a.offline)]
        if not live:
            return None
        return min(live, key=lambda a: (len(a.running) + len(a.queue), self.rng.random()))

    def _capacity(self, agent: Agent) -> float:
        return math.inf if agent is self.hot else SLOTS

    def _new_task(self, agent: Agent, median: float = TASK_MEDIAN_SECONDS) -> Task:
        duration = lognormal(self.rng, median, TASK_SIGMA)
        if agent.broken and self.rng.random() < 0.7:
            return Task(f"task-{next(self._ids):06d}", self.rng.uniform(5, 40), True)
        failed = self.rng.random() < FAILURE_RATIO
        return Task(f"task-{next(self._ids):06d}",
                    duration * self.rng.uniform(0.1, 0.6) if failed else duration, failed)

    def _begin(self, agent: Agent, task: Task, remaining: float | None = None) -> None:
        agent.running[task.id] = task
        self.pub.task_update(task.id, agent=agent.id, status="running")
        self.sim.after(task.duration if remaining is None else remaining,
                       lambda: self._finish(agent, task))

    def _finish(self, agent: Agent, task: Task) -> None:
        if agent.running.pop(task.id, None) is None:
            return  # handed over to another agent meanwhile
        duration = task.duration
        if self.rng.random() < self.sla_breach_ratio:
            # Reported at the normal pace (not 30 minutes later) so the alert shows within
            # minutes: these tasks sat behind a stuck dependency since before the demo started.
            duration = self.rng.uniform(TASK_SLA_SECONDS * 1.05, TASK_SLA_SECONDS * 2.5)
        self.pub.task_update(task.id, agent=agent.id, status="failed" if task.failed else "done",
                             duration_seconds=round(duration, 3))
        if task.failed:
            agent.failed += 1
            self.pub.error("task", component=agent.type, error=self.rng.choice(TASK_ERRORS),
                           error_id=f"err-{self.rng.getrandbits(48):012x}")
        else:
            agent.done += 1
        self.pub.redis.hincrby(f"metrics:agent:{agent.id}:performance",
                               "tasks_failed" if task.failed else "tasks_completed", 1)
        self._drain(agent)
        self.status(agent)

    def _drain(self, agent: Agent) -> None:
        while agent.queue and len(agent.running) < self._capacity(agent):
            self._begin(agent, agent.queue.popleft())


# -- training ----------------------------------------------------------------------------------

class TrainingRun:
    """One project's runs: the loss falls, sits on a plateau, drops again and converges; WER
    follows. A run lasts hours; between runs the project is `completed` and quiet."""

    def __init__(self, sim: Sim, pub: Publisher, rng: random.Random, project: str) -> None:
        self.sim, self.pub, self.rng, self.project = sim, pub, rng, project
        self.stalled = False                    # incident: no progress events
        self.spike = False                      # incident: loss above 5 (a corrupt data shard)
        self.diverging: float | None = None     # incident: loss multiplier, NaN past 1e4
        self.active = False
        self.step = 0

    def start(self) -> None:
        self.new_run()
        self.sim.every(TRAINING_INTERVAL_SECONDS, self.progress)

    def new_run(self) -> None:
        r = self.rng
        self.step = 0
        self.total_steps = r.randint(3, 5) * 3600 * STEPS_PER_SECOND
        self.floor = r.uniform(0.15, 0.35)
        self.start_loss = r.uniform(3.2, 4.4)
        self.plateau = r.uniform(0.5, 0.9)
        self.plateau_end = r.randint(8000, 14000)
        self.wer_floor = r.uniform(0.06, 0.14)
        self.learning_rate = r.choice((1e-4, 3e-4, 5e-4))
        self.diverging = None
        self.set_status("training")

    def set_status(self, status: str) -> None:
        """context:project:<id> status, the key the seed's jobs keep (TrainingStalled reads it)."""
        self.active = status == "training"
        self.pub.redis.hset(f"context:project:{self.project}", "status", status)

    def loss(self) -> float:
        s = self.step
        falling = (self.start_loss - self.floor - self.plateau) * math.exp(-s / 2500)
        plateau = self.plateau / (1 + math.exp(min((s - self.plateau_end) / 600, 50)))
        # The reported loss is a running mean over many batches: little noise, so a converged
        # run changes by under 1 % in 30 minutes (the plateau alert's test).
        return (self.floor + plateau + falling) * (1 + self.rng.gauss(0, 0.001))

    def wer(self, loss: float) -> float:
        progress = max(0.0, (loss - self.floor) / (self.start_loss - self.floor))
        return min(1.0, self.wer_floor + (0.95 - self.wer_floor) * progress ** 0.8)

    def progress(self) -> None:
        if not self.active or self.stalled:
            return
        self.step += TRAINING_INTERVAL_SECONDS * STEPS_PER_SECOND
        loss = self.loss()
        wer = self.wer(loss)
        if self.spike:
            loss = self.rng.uniform(5.5, 7.0)
        if self.diverging is not None:
            self.diverging *= 3
            loss = math.nan if self.diverging > 1e4 else loss * self.diverging
            wer = 1.0
        done = min(1.0, self.step / self.total_steps)
        learning_rate = self.learning_rate * 0.5 * (1 + math.cos(math.pi * done))  # cosine decay
        self.pub.training_progress(self.project, step=self.step, loss=loss, wer=round(wer, 4),
                                   learning_rate=learning_rate, epoch=round(self.step / 5000, 3))
        if self.step >= self.total_steps:
            self.set_status("completed")
            self.sim.after(RUN_BREAK_SECONDS, self.new_run)

    def crash_and_restart(self) -> None:
        """After divergence: the job was restarted from scratch with a lower learning rate."""
        self.new_run()
        self.learning_rate /= 3


# -- RAG, workflows, seed-004 records ----------------------------------------------------------

class Rag:
    """RAG queries: a cache in front of retrieval; low-confidence answers take the fallback.
    The class attributes are the healthy values; incidents override them per instance."""

    hit_ratio = 0.7
    failure_ratio = 0.005
    slowdown = 1.0
    confidence = (7.0, 2.0)     # beta distribution: about 3 % at or below 0.5
    malformed_ratio = 0.0       # incident: a client release sends broken events

    def __init__(self, pub: Publisher, rng: random.Random) -> None:
        self.pub, self.rng = pub, rng
        self.cache_size = 5000

    def query(self) -> None:
        r = self.rng
        source = r.choice(RAG_SOURCES)
        if r.random() < self.malformed_ratio:
            self.malformed(source)
            return
        hit = r.random() < self.hit_ratio
        duration = lognormal(r, 0.02, 0.4) if hit else lognormal(r, 0.3, 0.5)
        duration *= self.slowdown
        if r.random() < self.failure_ratio:
            self.pub.rag_query(round(duration, 4), False, cache_hit=hit, source=source)
            self.pub.error("rag", component="retriever", error="vector store query failed",
                           error_id=f"err-{r.getrandbits(48):012x}")
            return
        confidence = r.betavariate(*self.confidence)
        self.cache_size = min(self.cache_size + (not hit), 20000)
        self.pub.rag_query(round(duration, 4), True, cache_hit=hit,
                           relevance_score=round(r.betavariate(8, 2), 3),
                           confidence_score=round(confidence, 3), fallback=confidence < 0.45,
                           source=source)

    def malformed(self, source: str) -> None:
        """Events the exporter must reject: a negative duration, a score above 1."""
        if self.rng.random() < 0.5:
            self.pub.rag_query(-0.25, True, source=source)
        else:
            self.pub.rag_query(0.12, True, relevance_score=1.7, source=source)


class Workflows:
    """Workflow runs: their steps one after another, each reported when it ends."""

    def __init__(self, sim: Sim, pub: Publisher, rng: random.Random) -> None:
        self.sim, self.pub, self.rng = sim, pub, rng
        self.slow: tuple[str, str] | None = None     # incident: (workflow, step) is slow

    def start_run(self) -> None:
        self._step(self.rng.choice(sorted(WORKFLOWS)), 0)

    def _step(self, workflow: str, index: int) -> None:
        step, median = WORKFLOWS[workflow][index]
        duration = lognormal(self.rng, median, 0.4)

        def finish() -> None:
            reported = duration
            if self.slow == (workflow, step):
                # Reported at the normal pace, as for SLA breaches: the alert shows in minutes.
                reported = self.rng.uniform(SLOW_STEP_SECONDS * 1.2, SLOW_STEP_SECONDS * 2.5)
            self.pub.workflow_step(workflow, step, round(reported, 3))
            if index + 1 < len(WORKFLOWS[workflow]):
                self._step(workflow, index + 1)

        self.sim.after(duration, finish)


def publish_records(pub: Publisher, swarm: Swarm, rag: Rag) -> None:
    """Seed 004's collector records ({metric_name, value, unit, tags} + enrichment)."""
    meta = origin()
    reporting = [a for a in swarm.agents if not a.silent]
    for agent in reporting:
        tags = {"agent_id": agent.id, "agent_type": agent.type, "component": "agent"}
        finished = agent.done + agent.failed
        pub.metric("agent_success_rate", round(agent.done / finished, 4) if finished else 1.0,
                   "ratio", tags, collector="agent", **meta)
        pub.metric("agent_current_load", round(len(agent.running) / SLOTS, 3), "ratio", tags,
                   collector="agent", **meta)
    swarm_tags = {"component": "swarm"}
    pub.metric("swarm_total_agents", len(reporting), "count", swarm_tags, collector="agent", **meta)
    pub.metric("swarm_available_agents", sum(not a.offline for a in reporting), "count",
               swarm_tags, collector="agent", **meta)
    pub.metric("rag_cache_size", rag.cache_size, "count",
               {"component": "rag", "subsystem": "cache"}, collector="rag", **meta)


@dataclass
class World:
    sim: Sim
    swarm: Swarm
    training: dict[str, TrainingRun]
    rag: Rag
    workflows: Workflows
    llm: LlmCalls
    gpu: GpuHost
    collectors: Seed004Collectors
