"""`agent-exporter demo`: a simulated agent swarm publishing through the Publisher API, so a fresh
stack shows full dashboards within minutes and `--incidents` can show every alert it can reach.

The simulation runs in simulated seconds on an event heap paced against the wall clock (`--speed`
compresses time for tests). All randomness comes from random.Random(seed) (and one more generator
seeded from the same seed) and the heap is ordered by (time, insertion), so one seed gives one
exact sequence of events. Besides events it
keeps the seeds' state keys that agents and training jobs write (`context:project:<id>` status,
the active-agent set, per-agent workload and performance hashes) and, as seed 000's pattern 3
has a remote host do, a simulated GPU host's reading in `metrics:gpu:current`; it reads no NVML.
"""
from __future__ import annotations

import argparse
import logging
import math
import random
import signal
import threading
from dataclasses import dataclass

import redis

from ..publisher import Publisher
from ..redact import redacted_url
from .engine import Sim
from .gpu_host import GpuHost
from .incidents import INCIDENT_NAMES, INCIDENTS, schedule
from .llm import LlmCalls
from .records import USER_REQUESTS_PER_SECOND, Seed004Collectors
from .world import (
    PROJECTS,
    RECORDS_INTERVAL_SECONDS,
    WORKFLOWS,
    Rag,
    Swarm,
    TrainingRun,
    Workflows,
    World,
    publish_records,
)

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Options:
    rate: float = 10.0                  # RAG queries, workflow steps, transient errors per second
    agents: int = 12
    seed: int | None = None
    duration: float | None = None       # wall seconds; None runs until SIGTERM/SIGINT
    transport: str = "pubsub"
    incidents: tuple[str, ...] = ()     # names from INCIDENT_NAMES
    speed: float = 1.0                  # simulated seconds per wall second


def build(pub: Publisher, options: Options) -> World:
    """Create the simulated world and schedule everything; world.sim runs it."""
    rng = random.Random(options.seed)
    # The GPU host and seed 004's collectors draw from their own generators, so that adding them
    # left the swarm's sequence for a given seed as it was.
    side = random.Random(None if options.seed is None else f"{options.seed}:side")
    sim = Sim(options.speed)
    swarm = Swarm(sim, pub, rng, options.agents)
    world = World(sim, swarm,
                  {project: TrainingRun(sim, pub, rng, project) for project in PROJECTS},
                  Rag(pub, rng), Workflows(sim, pub, rng), LlmCalls(sim, pub, rng, swarm.agents),
                  GpuHost(sim, pub, side), Seed004Collectors(pub, side))
    world.swarm.start()
    world.llm.start()
    world.gpu.start()
    for run in world.training.values():
        run.start()
    per_sim_second = options.rate / options.speed
    steps_per_run = sum(len(steps) for steps in WORKFLOWS.values()) / len(WORKFLOWS)
    sim.poisson(0.84 * per_sim_second, rng, world.rag.query)
    sim.poisson(0.15 * per_sim_second / steps_per_run, rng, world.workflows.start_run)
    sim.poisson(0.01 * per_sim_second, rng, world.swarm.transient_error)
    sim.poisson(USER_REQUESTS_PER_SECOND, side, world.collectors.request)  # simulated time
    sim.every(RECORDS_INTERVAL_SECONDS, lambda: publish_records(pub, world.swarm, world.rag))
    sim.every(RECORDS_INTERVAL_SECONDS, world.collectors.flush)

    chosen = [incident for incident in INCIDENTS if incident.name in options.incidents]
    for n, incident in enumerate(chosen):  # staggered over the first minutes
        schedule(world, incident, 30.0 * (n + 1))
    return world


def positive(text: str) -> float:
    """argparse type: a finite number above 0."""
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text}")
    return value


def agent_count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 1 to 1000 agents, got {text}")
    return value


def incident_list(text: str) -> tuple[str, ...]:
    """argparse type: `all` or comma-separated incident names."""
    if text.strip() == "all":
        return INCIDENT_NAMES
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in INCIDENT_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown incident {', '.join(unknown)} "
                                         f"(known: all, {', '.join(INCIDENT_NAMES)})")
    return names


def run(redis_url: str, options: Options) -> int:
    """Publish until --duration has passed or SIGTERM/SIGINT; 0 when done."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    pub = Publisher(redis_url, transport=options.transport)
    log.info("demo: %d agents, %s events/s, seed %s, speed %sx, incidents: %s, to %s",
             options.agents, options.rate, options.seed, options.speed,
             ", ".join(options.incidents) or "none", redacted_url(redis_url))
    while not stop.is_set():  # the initial state goes out in one go: wait for Redis first
        try:
            pub.redis.ping()
            break
        except redis.RedisError as exc:
            log.warning("demo: waiting for Redis at %s: %s", redacted_url(redis_url), exc)
            stop.wait(1.0)
    world = build(pub, options)
    world.sim.run(None if options.duration is None else options.duration * options.speed, stop)
    pub.redis.close()
    return 0
