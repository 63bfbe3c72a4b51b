"""Incidents: one per alert the demo can reach, switched on in the first minutes and repeated
every two hours, so `agent-exporter demo --incidents` shows every such alert fire and resolve.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from .world import Rag, World

log = logging.getLogger(__name__)

INCIDENT_CYCLE_SECONDS = 7200  # incidents repeat; 2 h leaves the z-score baselines clean

Change = Callable[[World], None]


@dataclass(frozen=True)
class Incident:
    name: str
    alerts: tuple[str, ...]     # the alert rules it is meant to fire
    length: float               # simulated seconds
    begin: Change
    end: Change


def _toggle(target: Callable[[World], object], attr: str, on: object,
            off: object) -> tuple[Change, Change]:
    return lambda w: setattr(target(w), attr, on), lambda w: setattr(target(w), attr, off)


def _offline(world: World, value: bool) -> None:
    """A quarter of the agents (plus rounding) go offline: availability under 80 %."""
    agents = world.swarm.agents
    for agent in agents[-1 - math.ceil(len(agents) / 4):-1] or agents[:1]:
        world.swarm.set_offline(agent, value)


# One incident per alert the demo can reach: not the NVML or host alerts (it reads neither),
# not exporter outages, and not TaskThroughputLow (an hour of near silence). The z-score
# anomaly alerts need an hour of baseline, so they fire from the second cycle on.
INCIDENTS: tuple[Incident, ...] = (
    Incident("agent-silent", ("AgentNotSeen",), 600,
             lambda w: w.swarm.set_silent(w.swarm.agents[-1], True),
             lambda w: w.swarm.set_silent(w.swarm.agents[-1], False)),
    Incident("agents-offline", ("SwarmAvailabilityLow",), 900,
             lambda w: _offline(w, True), lambda w: _offline(w, False)),
    Incident("load-imbalance", ("AgentLoadImbalanced",), 1800,
             lambda w: setattr(w.swarm, "hot", w.swarm.agents[0]),
             lambda w: setattr(w.swarm, "hot", None)),
    Incident("agent-failing", ("AgentErrorRateHigh",), 900,
             *_toggle(lambda w: w.swarm.agents[1 % len(w.swarm.agents)], "broken", True, False)),
    Incident("sla-breach", ("TaskSlaComplianceLow", "TaskSlaErrorBudgetBurnFast",
                            "TaskSlaErrorBudgetBurnMedium"), 900,
             *_toggle(lambda w: w.swarm, "sla_breach_ratio", 0.5, 0.0)),
    Incident("task-burst", ("TaskThroughputAnomaly", "TaskDurationAnomaly"), 600,
             *_toggle(lambda w: w.swarm, "burst", True, False)),
    Incident("slow-step", ("WorkflowStepSlow",), 900,
             *_toggle(lambda w: w.workflows, "slow", ("model-training", "evaluate"), None)),
    Incident("loss-high", ("TrainingLossHigh",), 900,
             *_toggle(lambda w: w.training["proj-2"], "spike", True, False)),
    Incident("loss-diverging", ("TrainingLossDiverging",), 900,
             lambda w: setattr(w.training["proj-3"], "diverging", 1.0),
             lambda w: w.training["proj-3"].crash_and_restart()),
    Incident("training-stalled", ("TrainingStalled",), 1200,
             *_toggle(lambda w: w.training["proj-1"], "stalled", True, False)),
    Incident("rag-latency", ("RagLatencyHigh", "RagLatencyAnomaly"), 900,
             *_toggle(lambda w: w.rag, "slowdown", 15.0, 1.0)),
    Incident("rag-failures", ("RagSuccessRatioLow",), 900,
             *_toggle(lambda w: w.rag, "failure_ratio", 0.3, Rag.failure_ratio)),
    Incident("rag-cache-cold", ("RagCacheHitRatioLow",), 1200,
             *_toggle(lambda w: w.rag, "hit_ratio", 0.1, Rag.hit_ratio)),
    Incident("rag-low-confidence", ("RagLowConfidenceHigh",), 1200,
             *_toggle(lambda w: w.rag, "confidence", (2.0, 3.0), Rag.confidence)),
    Incident("invalid-events", ("ExporterEventsInvalid",), 900,
             *_toggle(lambda w: w.rag, "malformed_ratio", 0.2, 0.0)),
    Incident("llm-cost-spike", ("LlmAgentSpendOverBudget", "LlmSwarmSpendOverBudget"), 1500,
             lambda w: w.llm.set_runaway(w.swarm.agents[2 % len(w.swarm.agents)]),
             lambda w: w.llm.set_runaway(None)),
    Incident("llm-provider-outage", ("LlmProviderErrorRatioHigh", "LlmRateLimited"), 900,
             *_toggle(lambda w: w.llm, "outage", "openai", None)),
    Incident("gpu-hot", ("GpuTemperatureHigh", "GpuTemperatureCritical",
                         "GpuHotDuringCriticalErrors"), 900,
             *_toggle(lambda w: w.gpu, "overheating", True, False)),
)
INCIDENT_NAMES = tuple(incident.name for incident in INCIDENTS)


def schedule(world: World, incident: Incident, start: float) -> None:
    """Begin at `start`, end `length` later, and again every INCIDENT_CYCLE_SECONDS."""
    sim = world.sim

    def begin() -> None:
        log.info("demo: incident %s begins (meant to fire %s)", incident.name,
                 ", ".join(incident.alerts))
        incident.begin(world)
        sim.after(incident.length, end)

    def end() -> None:
        log.info("demo: incident %s ends", incident.name)
        incident.end(world)
        sim.after(INCIDENT_CYCLE_SECONDS - incident.length, begin)

    sim.at(start, begin)
