"""Alert-quality scenarios: simulated days of agent-exporter metrics with incidents injected.

Each timeline is a stretch of "normal hours" -- a swarm of agents with a daily load swing and
random noise (Poisson arrivals, log-normal durations, noisy gauges) -- with incidents injected at
known times. Some incidents are healthy events that must raise nothing, not even a pending
alert (`quiet`): a fresh start, a Prometheus or exporter restart, a new agent.
`render(timeline, rule_files, step)` turns a timeline into a promtool unit-test file whose input
series are the simulated scrapes (one a minute, or every 15 s with the counters interpolated)
and whose tests query ALERTS once per evaluation, so that `quality.py` can read the pending and
firing timeline of every alert out of promtool's output and score it against the incidents.

The simulation is deterministic: every random stream is seeded from the timeline's seed.
"""
from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Incidents and timelines
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    """An injected problem: `kind` selects the effect, times are minutes from the start."""

    name: str
    kind: str
    start: int
    duration: int
    expected: tuple[str, ...]  # alerts that must fire during the incident
    allowed: tuple[str, ...] = ()  # consequences that may fire without counting as false
    tail: int = 30  # minutes after the end during which its alerts may still be firing
    job: str = "A"
    quiet: bool = False  # a healthy event: no alert of its job may even be pending meanwhile
    sustained: tuple[str, ...] = ()  # alerts that must fire without a break until its end

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True)
class Timeline:
    name: str
    seed: int
    minutes: int
    incidents: tuple[Incident, ...]
    jobs: tuple[str, ...] = ("A",)
    description: str = ""


def hm(text: str) -> int:
    """'13:30' -> minutes."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


SLA = ("TaskSlaComplianceLow", "TaskSlaErrorBudgetBurnFast", "TaskSlaErrorBudgetBurnMedium",
       "TaskSlaErrorBudgetBurnSlow", "TaskDurationAnomaly")

DAY_ONE = Timeline(
    name="day-one",
    seed=1,
    minutes=24 * 60,
    description="A full day of one swarm, one incident of a different kind every 1-2 hours.",
    incidents=(
        Incident("fresh-start", "healthy", 0, 60, (), tail=0, quiet=True),
        Incident("gpu-overheat", "gpu_overheat", hm("01:00"), 45, ("GpuTemperatureHigh",)),
        Incident("hot-gpu-errors", "critical_errors", hm("01:20"), 10,
                 ("GpuHotDuringCriticalErrors",)),
        Incident("new-project-high-loss", "new_project_high_loss", hm("02:00"), 40,
                 ("TrainingLossHigh",)),
        Incident("host-cpu-saturated", "host_cpu", hm("03:30"), 45, ("HostCpuUtilizationHigh",)),
        Incident("rag-backend-slow", "rag_latency", hm("05:00"), 40,
                 ("RagLatencyHigh", "RagLatencyAnomaly")),
        Incident("agent-failing-tasks", "agent_errors", hm("06:30"), 45, ("AgentErrorRateHigh",)),
        Incident("workflow-step-slow", "workflow_slow", hm("08:00"), 45, ("WorkflowStepSlow",)),
        Incident("redis-down", "redis_down", hm("09:30"), 20, ("ExporterRedisDown",),
                 allowed=("AgentNotSeen", "TaskThroughputAnomaly", "ExporterCollectorFailing",
                          "TrainingStalled", "TaskDurationAnomaly", "RagLatencyAnomaly",
                          "ExporterSourceNotReading")),
        Incident("gpu-memory-leak", "gpu_leak", hm("11:00"), 40, ("GpuMemoryLeak",)),
        Incident("rag-failures", "rag_failures", hm("12:30"), 40, ("RagSuccessRatioLow",)),
        Incident("tasks-slow-down", "task_slowdown", hm("13:00"), 30, ("TaskDurationAnomaly",),
                 allowed=SLA, tail=90),
        Incident("agent-vanished", "agent_lost", hm("14:00"), 30, ("AgentNotSeen",)),
        Incident("loss-diverging", "loss_diverging", hm("15:30"), 40, ("TrainingLossDiverging",),
                 allowed=("TrainingLossHigh",)),
        Incident("disk-filling", "disk_filling", hm("15:00"), 150, ("HostFilesystemFillingUp",)),
        Incident("load-imbalance", "load_imbalance", hm("17:00"), 60, ("AgentLoadImbalanced",)),
        Incident("retry-storm", "throughput_spike", hm("18:30"), 20, ("TaskThroughputAnomaly",)),
        Incident("rag-cache-cold", "rag_cache", hm("19:30"), 40, ("RagCacheHitRatioLow",)),
        Incident("invalid-events", "invalid_events", hm("20:30"), 30, ("ExporterEventsInvalid",)),
        Incident("sla-breach", "sla_breach", hm("21:30"), 45,
                 ("TaskSlaComplianceLow", "TaskSlaErrorBudgetBurnFast"), allowed=SLA, tail=90),
        Incident("gpu-starved", "gpu_underutilized", hm("23:00"), 30,
                 ("GpuUnderutilizedWhileTraining",)),
        Incident("llm-agent-overspend", "llm_agent_spend", hm("04:00"), 60,
                 ("LlmAgentSpendOverBudget",), allowed=("LlmSwarmSpendOverBudget",)),
        Incident("llm-provider-outage", "llm_provider_outage", hm("10:00"), 40,
                 ("LlmProviderErrorRatioHigh", "LlmRateLimited")),
        Incident("llm-model-slow", "llm_slow", hm("16:00"), 45,
                 ("LlmLatencyHigh", "LlmTimeToFirstTokenHigh")),
    ),
)

DAY_TWO = Timeline(
    name="day-two",
    seed=2,
    minutes=12 * 60,
    jobs=("A", "B"),
    description="12 hours of two swarms (jobs agent-exporter and agent-exporter-eu): slow and "
                "medium SLO burns, exporter failures and the remaining incident kinds.",
    incidents=(
        Incident("fresh-start", "healthy", 0, 30, (), tail=0, quiet=True),
        Incident("fresh-start-eu", "healthy", 0, 60, (), tail=0, quiet=True, job="B"),
        Incident("gpu-critical-heat", "gpu_critical", hm("00:30"), 40,
                 ("GpuTemperatureCritical",), allowed=("GpuTemperatureHigh",)),
        Incident("gpu-memory-full", "gpu_mem_exhaustion", hm("01:30"), 30,
                 ("GpuMemoryExhaustion",)),
        Incident("series-overflow", "series_overflow", hm("02:00"), 10,
                 ("ExporterSeriesOverflow",)),
        Incident("rag-low-confidence", "rag_low_confidence", hm("02:30"), 45,
                 ("RagLowConfidenceHigh",)),
        Incident("host-memory-full", "host_memory", hm("03:00"), 40,
                 ("HostMemoryUtilizationHigh",)),
        Incident("slow-burn", "slow_burn", hm("03:00"), 360, ("TaskSlaErrorBudgetBurnSlow",),
                 allowed=SLA, tail=180),
        Incident("medium-burn", "medium_burn", hm("03:00"), 360,
                 ("TaskSlaErrorBudgetBurnMedium",), allowed=SLA, tail=180, job="B"),
        Incident("gpu-collector-failing", "collector_failing", hm("04:00"), 40,
                 ("ExporterCollectorFailing",)),
        Incident("events-lost", "events_lost", hm("05:00"), 10, ("ExporterEventsLost",)),
        Incident("exporter-down", "exporter_down", hm("06:00"), 30, ("AgentExporterDown",),
                 allowed=("TaskThroughputAnomaly", "TaskDurationAnomaly", "RagLatencyAnomaly")),
        Incident("agents-unavailable", "swarm_unavailable", hm("07:00"), 40,
                 ("SwarmAvailabilityLow",)),
        Incident("training-converged", "loss_converged", hm("08:00"), 60,
                 ("TrainingLossConverged",)),
        Incident("training-hung", "training_stalled", hm("09:30"), 40, ("TrainingStalled",)),
        Incident("throughput-collapse", "throughput_collapse", hm("09:30"), 100,
                 ("TaskThroughputLow",), allowed=("TaskThroughputAnomaly",), job="B"),
        Incident("llm-swarm-overspend", "llm_swarm_spend", hm("10:30"), 60,
                 ("LlmSwarmSpendOverBudget",), allowed=("LlmAgentSpendOverBudget",)),
        # Redis answers, but the exporter's ACL user lost a permission its source needs: the
        # source stops reading (and redis_up, which says every source reads, goes 0 with it).
        Incident("source-not-reading", "source_stalled", hm("11:35"), 20,
                 ("ExporterSourceNotReading",),
                 allowed=("ExporterRedisDown", "AgentNotSeen", "TaskThroughputAnomaly",
                          "TrainingStalled", "TaskDurationAnomaly", "RagLatencyAnomaly")),
    ),
)

DAY_THREE = Timeline(
    name="day-three",
    seed=3,
    minutes=12 * 60,
    jobs=("A", "B"),
    description="12 hours of two swarms: healthy starts and restarts that must stay silent, "
                "stalls (from the start, and one of four hours across an exporter restart), "
                "a step that runs one at a time, the GPU an agent reports in Redis, a loss near "
                "zero.",
    incidents=(
        Incident("fresh-start", "healthy", 0, 60, (), tail=0, quiet=True),
        Incident("stall-from-start", "tasks_stalled", 0, 150, ("TaskThroughputLow",),
                 allowed=("TaskThroughputAnomaly", "TaskDurationAnomaly"), tail=90, job="B",
                 sustained=("TaskThroughputLow",)),
        Incident("new-agent", "new_agent", hm("01:00"), 60, (), tail=0, quiet=True),
        Incident("exporter-restart", "exporter_restart", hm("02:00"), 60, (), tail=0,
                 quiet=True),
        Incident("prometheus-restart", "prometheus_restart", hm("03:00"), 5, (), tail=60,
                 quiet=True),
        Incident("prometheus-restart-eu", "healthy", hm("03:00"), 5, (), tail=60, quiet=True,
                 job="B"),
        Incident("sequential-slow-step", "nightly_slow", hm("04:00"), 240,
                 ("WorkflowStepSlow",), tail=90),
        Incident("redis-gpu-hot", "reported_gpu_hot", hm("04:30"), 40,
                 ("GpuTemperatureCritical", "GpuTemperatureHigh")),
        Incident("redis-gpu-leak", "reported_gpu_leak", hm("05:30"), 40, ("GpuMemoryLeak",)),
        Incident("redis-gpu-idle", "reported_gpu_idle", hm("06:30"), 40,
                 ("GpuUnderutilizedWhileTraining",)),
        Incident("long-stall", "tasks_stalled", hm("07:30"), 240,
                 ("TaskThroughputLow", "TaskThroughputAnomaly"), allowed=("TaskDurationAnomaly",),
                 tail=30, sustained=("TaskThroughputLow",)),
        Incident("exporter-restart-in-stall", "exporter_restart", hm("09:00"), 1, ()),
        Incident("loss-near-zero", "loss_near_zero", hm("10:00"), 60, ("TrainingLossPlateau",),
                 allowed=("TrainingLossConverged",)),
    ),
)

TIMELINES = (DAY_ONE, DAY_TWO, DAY_THREE)

# --------------------------------------------------------------------------------------------
# Series store
# --------------------------------------------------------------------------------------------

JOBS = {
    "A": {"job": "agent-exporter", "instance": "exporter:9842"},
    "B": {"job": "agent-exporter-eu", "instance": "exporter-eu:9842"},
}

TASK_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)
RAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
WORKFLOW_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
LLM_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                        40.96, 81.92)
LLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                    5.0, 7.5, 10.0)


def le(bound: float) -> str:
    """Bucket bound as prometheus_client writes it (1800 -> "1800.0")."""
    return repr(float(bound))


def key(name: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


class Exporter:
    """The metrics one exporter job exposes: counters (cumulative, reset on restart) and gauges."""

    GAUGE_TTL_MINUTES = 30  # the exporter's series_ttl_seconds for gauges

    def __init__(self, job: str) -> None:
        self.base = dict(JOBS[job])
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float | None] = {}
        self.gauge_set: dict[str, int] = {}  # gauge -> minute it was last set
        self.minute = 0
        self.up = True
        self.redis_up = True  # Redis answers
        self.reading = True  # the event source reads
        self.last_read: float | None = None  # when it last read (seconds)
        self._keys: dict[tuple, str] = {}
        self._histograms: dict[tuple, tuple] = {}

    def _key(self, name: str, labels: dict[str, str]) -> str:
        cache_key = (name, tuple(labels.items()))
        k = self._keys.get(cache_key)
        if k is None:
            k = self._keys[cache_key] = key(name, {**self.base, **labels})
        return k

    def inc(self, name: str, labels: dict[str, str], amount: float = 1.0) -> None:
        k = self._key(name, labels)
        self.counters[k] = self.counters.get(k, 0.0) + amount

    def declare(self, name: str, labels: dict[str, str]) -> None:
        self.counters.setdefault(self._key(name, labels), 0.0)

    def set(self, name: str, labels: dict[str, str], value: float | None) -> None:
        k = self._key(name, labels)
        self.gauges[k] = value
        self.gauge_set[k] = self.minute

    def expire(self) -> None:
        """Drop the gauges nobody has set for the TTL (an agent or a project gone quiet)."""
        for k, minute in list(self.gauge_set.items()):
            if self.minute - minute >= self.GAUGE_TTL_MINUTES:
                del self.gauge_set[k]
                self.gauges.pop(k, None)

    def _histogram(self, name: str, labels: dict[str, str], buckets: Iterable[float]) -> tuple:
        cache_key = (name, tuple(labels.items()))
        h = self._histograms.get(cache_key)
        if h is None:
            bounds = tuple(buckets)
            h = self._histograms[cache_key] = (
                bounds,
                [self._key(name + "_bucket", {**labels, "le": le(b)}) for b in bounds]
                + [self._key(name + "_bucket", {**labels, "le": "+Inf"})],
                self._key(name + "_count", labels),
                self._key(name + "_sum", labels),
            )
        return h

    def observe_many(self, name: str, labels: dict[str, str], values: list[float],
                     buckets: Iterable[float]) -> None:
        """observe() for a minute's worth of values at once (same result, much faster)."""
        if not values:
            return
        bounds, bucket_keys, count_key, sum_key = self._histogram(name, labels, buckets)
        ordered = sorted(values)
        counters = self.counters
        for bound, k in zip(bounds, bucket_keys):
            below = bisect.bisect_right(ordered, bound)
            if below:
                counters[k] = counters.get(k, 0.0) + below
        counters[bucket_keys[-1]] = counters.get(bucket_keys[-1], 0.0) + len(values)
        counters[count_key] = counters.get(count_key, 0.0) + len(values)
        counters[sum_key] = counters.get(sum_key, 0.0) + sum(values)

    def declare_histogram(self, name: str, labels: dict[str, str],
                          buckets: Iterable[float]) -> None:
        _, bucket_keys, count_key, sum_key = self._histogram(name, labels, buckets)
        for k in (*bucket_keys, count_key, sum_key):
            self.counters.setdefault(k, 0.0)

    def restart(self) -> None:
        """A new process: every series is gone until an event or a scrape-time read sets it."""
        self.counters.clear()
        self.gauges.clear()
        self.gauge_set.clear()
        self.last_read = None


class Store:
    """minute -> value per series; None where the series does not exist. In the `gaps` minutes
    Prometheus was down: no sample is taken, and no staleness marker written."""

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self.series: dict[str, list[float | None]] = {}
        self.gaps: set[int] = set()

    def put(self, k: str, minute: int, value: float | None) -> None:
        if k not in self.series:
            self.series[k] = [None] * self.minutes
        self.series[k][minute] = value

    def snapshot(self, minute: int, exporter: Exporter) -> None:
        base = exporter.base
        self.put(key("up", base), minute, 1.0 if exporter.up else 0.0)
        if not exporter.up:
            for k in list(exporter.counters) + list(exporter.gauges):
                self.put(k, minute, None)
            return
        for k, count in exporter.counters.items():
            self.put(k, minute, count)
        for k, value in exporter.gauges.items():
            self.put(k, minute, value)


# --------------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------------


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def daily_load(minute: int) -> float:
    """Load factor 0.6 (midnight) .. 1.4 (noon)."""
    return 1.0 + 0.4 * math.sin(2 * math.pi * (minute / 1440.0 - 0.25))


class Simulation:
    AGENTS_A = tuple(f"a{i}" for i in range(1, 7))
    AGENTS_B = ("b1", "b2", "b3")

    def __init__(self, timeline: Timeline) -> None:
        self.t = timeline
        self.store = Store(timeline.minutes)
        self.ex = {job: Exporter(job) for job in timeline.jobs}
        seed = timeline.seed
        self.rng = {name: random.Random(f"{seed}-{name}") for name in
                    ("agents", "tasks", "training", "rag", "workflows", "gpu", "system",
                     "exporter", "llm", "agents-b", "reported-gpu", "errors", "nightly")}
        # per-domain state
        self.last_seen: dict[tuple[str, str], float] = {}
        self.projects: dict[str, dict] = {
            "p1": {"start": -600, "status": "training"},
        }
        self.leak_bytes = 0.0
        self.reported_leak_bytes = 0.0
        self.disk_extra = 0.0
        self.joined: list[str] = []  # agents that joined swarm A during the timeline
        self.nightly_end: float | None = None  # end (seconds) of the running nightly/train run
        self._declare()

    # ---- setup -------------------------------------------------------------------------
    def _declare(self) -> None:
        for job, ex in self.ex.items():
            agents = self.AGENTS_A if job == "A" else self.AGENTS_B
            for agent in agents:
                for status in ("done", "failed"):
                    ex.declare("agent_tasks_total", {"agent": agent, "status": status})
                ex.declare_histogram("agent_task_duration_seconds",
                                     {"agent": agent, "status": "done"}, TASK_BUCKETS)
            ex.set("agent_exporter_build_info", {"version": "0.1.0"}, 1.0)
            ex.set("agent_exporter_redis_up", {}, 1.0)
            ex.set("agent_exporter_source_up", {"source": "pubsub"}, 1.0)
            ex.set("agent_exporter_source_last_read_timestamp_seconds", {"source": "pubsub"}, 0.0)
            if job != "A":
                continue
            for source in ("docs", "web"):
                for outcome in ("success", "fallback", "failure"):
                    ex.declare("rag_queries_total", {"source": source, "outcome": outcome})
                for result in ("hit", "miss"):
                    ex.declare("rag_cache_requests_total", {"source": source, "result": result})
                ex.declare_histogram("rag_query_duration_seconds", {"source": source},
                                     RAG_BUCKETS)
                ex.declare_histogram("rag_confidence_score", {"source": source}, SCORE_BUCKETS)
                ex.declare_histogram("rag_relevance_score", {"source": source}, SCORE_BUCKETS)
            for step in ("fetch", "parse", "index"):
                ex.declare_histogram("workflow_step_duration_seconds",
                                     {"workflow": "ingest", "step": step}, WORKFLOW_BUCKETS)
            for channel, event_type in self.SOURCES:
                ex.declare("agent_exporter_events_total", {"source": channel, "type": event_type})
                ex.declare("agent_exporter_events_invalid_total",
                           {"source": channel, "reason": "schema"})
                ex.declare("agent_exporter_events_lost_total", {"source": channel})
            for metric in ("agent_tasks_total", "rag_queries_total"):
                ex.declare("agent_exporter_series_overflow_total", {"metric": metric})
            self._declare_llm(ex)

    # LLM calls (job A): agents a1-a3 call openai gpt-4o, a4-a6 anthropic claude-sonnet-4, four
    # calls a minute each at mean load, about 1.1 cents a call: an agent spends 76 % of its
    # daily budget at the noon peak, the swarm 68 % of its own.
    LLM_MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4"}
    LLM_AGENT_BUDGET_USD = 120.0
    LLM_SWARM_BUDGET_USD = 800.0

    def _llm_labels(self, agent: str) -> dict[str, str]:
        provider = "openai" if agent in ("a1", "a2", "a3") else "anthropic"
        return {"agent": agent, "gen_ai_operation_name": "chat",
                "gen_ai_provider_name": provider,
                "gen_ai_request_model": self.LLM_MODELS[provider]}

    def _llm_budgets(self, ex: Exporter) -> None:
        ex.set("agent_llm_swarm_daily_budget_usd", {}, self.LLM_SWARM_BUDGET_USD)
        for agent in self.AGENTS_A:
            ex.set("agent_llm_daily_budget_usd", {"agent": agent}, self.LLM_AGENT_BUDGET_USD)

    def _declare_llm(self, ex: Exporter) -> None:
        for agent in self.AGENTS_A:
            labels = self._llm_labels(agent)
            model = {k: v for k, v in labels.items() if k != "gen_ai_operation_name"}
            ex.declare("agent_llm_cost_usd_total", model)
            for outcome in ("ok", "error"):
                ex.declare("agent_llm_requests_total", {**model, "outcome": outcome})
            for error in ("429", "timeout"):
                ex.declare("gen_ai_client_operation_duration_seconds_count",
                           {**labels, "error_type": error})
            ex.declare_histogram("gen_ai_client_operation_duration_seconds", labels,
                                 LLM_DURATION_BUCKETS)
            ex.declare_histogram("gen_ai_server_time_to_first_token_seconds", labels,
                                 LLM_TTFT_BUCKETS)

    SOURCES = (("events:tasks:updates", "tasks"), ("events:agents:status", "agents"),
               ("events:training:progress", "training"), ("events:rag:queries", "rag"),
               ("events:workflows:steps", "workflows"))

    # ---- helpers -----------------------------------------------------------------------
    def active(self, minute: int, job: str = "A") -> dict[str, Incident]:
        return {i.kind: i for i in self.t.incidents
                if i.start <= minute < i.end and i.job == job}

    def starts(self, minute: int, job: str, kind: str) -> bool:
        return any(i.start == minute and i.job == job and i.kind == kind
                   for i in self.t.incidents)

    def agent_names(self, job: str) -> tuple[str, ...]:
        return self.AGENTS_A + tuple(self.joined) if job == "A" else self.AGENTS_B

    # ---- main loop ---------------------------------------------------------------------
    def run(self) -> Store:
        for minute in range(self.t.minutes):
            prometheus_down = "prometheus_restart" in self.active(minute)
            if self.starts(minute, "A", "new_agent"):
                self.joined.append(f"a{len(self.AGENTS_A) + len(self.joined) + 1}")
            for job, ex in self.ex.items():
                act = self.active(minute, job)
                ex.minute = minute
                was_up = ex.up
                ex.up = "exporter_down" not in act
                if (ex.up and not was_up) or self.starts(minute, job, "exporter_restart"):
                    ex.restart()
                ex.redis_up = "redis_down" not in act
                ex.reading = ex.redis_up and "source_stalled" not in act
                ex.set("agent_exporter_redis_up", {}, 1.0 if ex.reading else 0.0)
                ex.set("agent_exporter_build_info", {"version": "0.1.0"}, 1.0)
                ex.set("agent_exporter_source_up", {"source": "pubsub"}, 1.0 if ex.reading else 0.0)
                if ex.reading or ex.last_read is None:  # start-up time until the first read
                    ex.last_read = minute * 60.0
                # read at scrape time from the source's state: never expires
                ex.set("agent_exporter_source_last_read_timestamp_seconds", {"source": "pubsub"},
                       ex.last_read)
                if job == "A" and ex.up:  # exported from the config, every scrape
                    self._llm_budgets(ex)
                events = ex.up and ex.reading
                self.tasks(minute, job, ex, act, events)
                self.agents(minute, job, ex, act, events)
                if job == "A":
                    self.training(minute, ex, act, events)
                    self.rag(minute, ex, act, events)
                    self.workflows(minute, ex, act, events)
                    self.llm(minute, ex, act, events)
                    self.gpu(minute, ex, act)
                    self.system(minute, ex, act)
                    self.exporter_health(minute, ex, act, events)
                ex.expire()
                self.store.snapshot(minute, ex)
            if prometheus_down:
                self.store.gaps.add(minute)
        return self.store

    # ---- agents ------------------------------------------------------------------------
    def agents(self, minute: int, job: str, ex: Exporter, act: dict, events: bool) -> None:
        rng = self.rng["agents" if job == "A" else "agents-b"]
        now, load, names = minute * 60, daily_load(minute), self.agent_names(job)
        available = {a: not ("swarm_unavailable" in act and a in ("a4", "a5")) for a in names}
        serving = [a for a in names if available[a]
                   and not ("agent_lost" in act and a == "a5")]
        # A least-loaded balancer: the swarm's tasks spread evenly over the serving agents.
        total = poisson(rng, 3.0 * load * len(names))
        share = {a: 0 for a in names}
        if "load_imbalance" in act:
            heavy = min(total, round(total * 0.45))
            share["a1"] = heavy
            rest = [a for a in serving if a != "a1"]
            for i in range(total - heavy):
                share[rest[i % len(rest)]] += 1
        else:
            order = serving[:]
            rng.shuffle(order)
            for i in range(total):
                share[order[i % len(order)]] += 1
        for agent in names:
            if not events or ("agent_lost" in act and agent == "a5"):
                continue  # no status event: the exporter keeps the last values
            ex.set("agent_last_seen_timestamp_seconds", {"agent": agent},
                   float(now - rng.randint(0, 30)))
            current = share[agent]
            ex.set("agent_current_tasks", {"agent": agent}, float(current))
            ex.set("agent_busy", {"agent": agent}, 1.0 if current else 0.0)
            ex.set("agent_available", {"agent": agent}, 1.0 if available[agent] else 0.0)
            ex.set("agent_queue_depth", {"agent": agent}, float(poisson(rng, 1.5 * load)))
            ex.set("agent_load_ratio", {"agent": agent},
                   round(min(1.0, max(0.0, current / 8 + rng.gauss(0, 0.03))), 3))
            ex.inc("agent_exporter_events_total",
                   {"source": "events:agents:status", "type": "agents"}, 2)

    # ---- tasks -------------------------------------------------------------------------
    def tasks(self, minute: int, job: str, ex: Exporter, act: dict, events: bool) -> None:
        if not events:
            return
        if "tasks_stalled" in act:
            return  # nothing completes; the agents still report status
        rng, load = self.rng["tasks"], daily_load(minute)
        agents = self.agent_names(job)
        all_act = self.active(minute, "A") if job == "A" else act
        serving = [a for a in agents
                   if not ("agent_lost" in all_act and a == "a5")
                   and not ("swarm_unavailable" in all_act and a in ("a4", "a5"))]
        per_agent = (600 if job == "A" else 300) / 60.0 / len(agents) * load
        per_agent *= len(agents) / max(1, len(serving))
        if "throughput_spike" in act:
            per_agent *= 3
        if "throughput_collapse" in act:
            per_agent *= 0.01
        stuck = 0.0
        for kind, probability in (("sla_breach", 0.25), ("medium_burn", 0.09),
                                  ("slow_burn", 0.045)):
            if kind in act:
                stuck = probability
        for agent in serving:
            finished = poisson(rng, per_agent)
            p_fail = 0.5 if ("agent_errors" in act and agent == "a3") else 0.02
            failed = sum(1 for _ in range(finished) if rng.random() < p_fail)
            done = finished - failed
            ex.inc("agent_tasks_total", {"agent": agent, "status": "done"}, done)
            ex.inc("agent_tasks_total", {"agent": agent, "status": "failed"}, failed)
            durations = []
            for _ in range(done):
                if stuck and rng.random() < stuck:
                    duration = rng.uniform(2000, 5000)
                else:
                    median = 300 * (1 + 0.1 * (load - 1))
                    if "task_slowdown" in act:
                        median *= 2
                    duration = rng.lognormvariate(math.log(median), 0.65)
                durations.append(round(duration, 1))
            ex.observe_many("agent_task_duration_seconds", {"agent": agent, "status": "done"},
                            durations, TASK_BUCKETS)
            if job == "A":
                ex.inc("agent_exporter_events_total",
                       {"source": "events:tasks:updates", "type": "tasks"}, 3 * finished)

    # ---- training ----------------------------------------------------------------------
    def training(self, minute: int, ex: Exporter, act: dict, events: bool) -> None:
        rng, now = self.rng["training"], minute * 60
        for kind, project in (("new_project_high_loss", "p2"), ("loss_converged", "p3"),
                              ("loss_near_zero", "p4")):
            if kind in act and project not in self.projects:
                self.projects[project] = {"start": minute, "status": "training"}
            elif project in self.projects and kind not in act and project != "p2":
                self.projects[project]["status"] = "completed"
        for project, state in self.projects.items():
            age = minute - state["start"]
            status = state["status"]
            if ex.redis_up:
                for other in ("training", "completed"):
                    ex.set("training_project_status", {"project": project, "status": other},
                           1.0 if other == status else None)
            else:  # the Redis-state collector cannot read context:project:<id>
                for other in ("training", "completed"):
                    ex.set("training_project_status", {"project": project, "status": other},
                           None)
            publishing = (events and status == "training"
                          and not ("training_stalled" in act and project == "p1"))
            if not publishing:
                continue
            if project == "p1":
                loss = 0.45 + 2.2 * math.exp(-age / 480)
                if "loss_diverging" in act:
                    loss *= math.exp((minute - act["loss_diverging"].start) / 12)
                noise = 0.025
            elif project == "p2":
                loss = 0.5 + 7.5 * math.exp(-age / 60)
                noise = 0.025
            elif project == "p3":  # an epoch-averaged loss that no longer moves
                loss = 0.8123
                noise = 0.0008
            else:  # p4 has fitted its data: the loss sits near zero
                loss = 0.005
                noise = 0.05
            loss *= 1 + rng.gauss(0, noise)
            ex.set("training_loss", {"project": project}, round(loss, 5))
            ex.set("training_step", {"project": project}, float(200 * age))
            ex.set("training_last_update_timestamp_seconds", {"project": project},
                   float(now - rng.randint(0, 30)))
            ex.inc("training_updates_total", {"project": project}, 2)
            ex.inc("agent_exporter_events_total",
                   {"source": "events:training:progress", "type": "training"}, 2)

    # ---- rag ---------------------------------------------------------------------------
    def rag(self, minute: int, ex: Exporter, act: dict, events: bool) -> None:
        if not events:
            return
        rng, load = self.rng["rag"], daily_load(minute)
        for source, rate in (("docs", 90.0), ("web", 30.0)):
            n = poisson(rng, rate * load)
            latency_factor = 8.0 if ("rag_latency" in act and source == "docs") else 1.0
            p_fail = 0.2 if ("rag_failures" in act and source == "docs") else 0.02
            p_hit = 0.05 if ("rag_cache" in act and source == "docs") else 0.45
            low_conf = "rag_low_confidence" in act and source == "web"
            median = 0.35 * (1 + 0.25 * (load - 1)) * latency_factor
            outcomes = {"success": 0, "fallback": 0, "failure": 0}
            hits = 0
            latencies, confidences, relevances = [], [], []
            conf_mean = 0.5 if low_conf else 0.72
            for _ in range(n):
                u = rng.random()
                outcomes["failure" if u < p_fail else
                         "fallback" if u < p_fail + 0.03 else "success"] += 1
                hits += rng.random() < p_hit
                latencies.append(round(rng.lognormvariate(math.log(median), 0.5), 4))
                confidences.append(round(min(1.0, max(0.0, rng.gauss(conf_mean, 0.17))), 3))
                relevances.append(round(min(1.0, max(0.0, rng.gauss(0.75, 0.12))), 3))
            for outcome, count in outcomes.items():
                ex.inc("rag_queries_total", {"source": source, "outcome": outcome}, count)
            ex.inc("rag_cache_requests_total", {"source": source, "result": "hit"}, hits)
            ex.inc("rag_cache_requests_total", {"source": source, "result": "miss"}, n - hits)
            ex.observe_many("rag_query_duration_seconds", {"source": source}, latencies,
                            RAG_BUCKETS)
            ex.observe_many("rag_confidence_score", {"source": source}, confidences,
                            SCORE_BUCKETS)
            ex.observe_many("rag_relevance_score", {"source": source}, relevances,
                            SCORE_BUCKETS)
            ex.inc("agent_exporter_events_total",
                   {"source": "events:rag:queries", "type": "rag"}, n)

    # ---- workflows ---------------------------------------------------------------------
    def workflows(self, minute: int, ex: Exporter, act: dict, events: bool) -> None:
        if not events:
            return
        rng, load = self.rng["workflows"], daily_load(minute)
        for step, median in (("fetch", 20.0), ("parse", 60.0), ("index", 240.0)):
            runs = poisson(rng, load)
            if step == "index" and "workflow_slow" in act:
                runs, median = poisson(rng, 2.0), 900.0
            ex.observe_many("workflow_step_duration_seconds",
                            {"workflow": "ingest", "step": step},
                            [round(rng.lognormvariate(math.log(median), 0.4), 1)
                             for _ in range(runs)], WORKFLOW_BUCKETS)
            ex.inc("agent_exporter_events_total",
                   {"source": "events:workflows:steps", "type": "workflows"}, runs)
        self.nightly(minute, ex, act)

    def nightly(self, minute: int, ex: Exporter, act: dict) -> None:
        """nightly/train: one run at a time, from the nightly_slow incident on; 700 s a run
        during it, 400 s after."""
        if self.starts(minute, "A", "nightly_slow"):
            self.nightly_end = minute * 60 + 700.0
        if self.nightly_end is None:
            return
        ended = []
        while self.nightly_end <= minute * 60:
            duration = (700.0 if "nightly_slow" in act else 400.0)
            duration *= 1 + self.rng["nightly"].uniform(-0.03, 0.03)
            ended.append(round(duration, 1))
            self.nightly_end += duration
        ex.observe_many("workflow_step_duration_seconds", {"workflow": "nightly", "step": "train"},
                        ended, WORKFLOW_BUCKETS)

    # ---- llm ---------------------------------------------------------------------------
    def llm(self, minute: int, ex: Exporter, act: dict, events: bool) -> None:
        if not events:
            return
        rng, load = self.rng["llm"], daily_load(minute)
        for agent in self.AGENTS_A:
            labels = self._llm_labels(agent)
            provider = labels["gen_ai_provider_name"]
            model = {k: v for k, v in labels.items() if k != "gen_ai_operation_name"}
            rate = 4.0 * load
            if "llm_swarm_spend" in act or ("llm_agent_spend" in act and agent == "a2"):
                rate *= 3 if "llm_swarm_spend" in act else 6
            outage = "llm_provider_outage" in act and provider == "openai"
            slow = "llm_slow" in act and provider == "anthropic"
            p_limited, p_timeout = (0.25, 0.15) if outage else (0.003, 0.01)
            duration_median, first_token_median = (30.0, 5.0) if slow else (6.0, 0.5)
            cost, durations, first_tokens, errors = 0.0, [], [], {"429": 0, "timeout": 0}
            for _ in range(poisson(rng, rate)):
                u = rng.random()
                if u < p_limited + p_timeout:
                    errors["429" if u < p_limited else "timeout"] += 1
                    continue
                cost += rng.lognormvariate(math.log(0.01), 0.5)
                durations.append(round(rng.lognormvariate(math.log(duration_median), 0.5), 3))
                first_tokens.append(round(rng.lognormvariate(math.log(first_token_median), 0.5),
                                          4))
            ex.inc("agent_llm_cost_usd_total", model, round(cost, 6))
            ex.inc("agent_llm_requests_total", {**model, "outcome": "ok"}, len(durations))
            ex.inc("agent_llm_requests_total", {**model, "outcome": "error"}, sum(errors.values()))
            for error, count in errors.items():
                ex.inc("gen_ai_client_operation_duration_seconds_count",
                       {**labels, "error_type": error}, count)
            ex.observe_many("gen_ai_client_operation_duration_seconds", labels, durations,
                            LLM_DURATION_BUCKETS)
            ex.observe_many("gen_ai_server_time_to_first_token_seconds", labels, first_tokens,
                            LLM_TTFT_BUCKETS)

    # ---- gpu ---------------------------------------------------------------------------
    def gpu(self, minute: int, ex: Exporter, act: dict) -> None:
        rng, load = self.rng["gpu"], daily_load(minute)
        failing = "collector_failing" in act
        ex.set("agent_exporter_collector_success", {"collector": "gpu"}, 0.0 if failing else 1.0)
        if "gpu_leak" in act:
            self.leak_bytes += 350e6
        else:
            self.leak_bytes = 0.0
        for index, base_memory in ((0, 60e9), (1, 52e9)):
            labels = {"gpu": str(index), "uuid": f"GPU-{index}"}
            util = 0.88 + rng.gauss(0, 0.04)
            temp = 68 + 8 * (load - 0.6) / 0.8 + rng.gauss(0, 1.0)
            memory = base_memory + rng.gauss(0, 0.1e9)
            if index == 1 and "gpu_overheat" in act:
                temp = 87 + rng.gauss(0, 0.6)
            if index == 1 and "gpu_critical" in act:
                temp = 93 + rng.gauss(0, 0.6)
            if index == 0:
                memory += self.leak_bytes
                if "gpu_mem_exhaustion" in act:
                    memory = 77.5e9 + rng.gauss(0, 0.05e9)
            if "gpu_underutilized" in act:
                util = 0.12 + rng.gauss(0, 0.03)
            values = {
                "gpu_utilization_ratio": round(min(1.0, max(0.0, util)), 3),
                "gpu_temperature_celsius": round(temp, 1),
                "gpu_memory_used_bytes": float(round(memory)),
                "gpu_memory_total_bytes": 80e9,
            }
            for name, value in values.items():
                ex.set(name, labels, None if failing else value)
        self.reported_gpu(ex, act)

    def reported_gpu(self, ex: Exporter, act: dict) -> None:
        """The GPU an agent writes to metrics:gpu:current, read by the Redis-state collector."""
        rng = self.rng["reported-gpu"]
        if "reported_gpu_leak" in act:
            self.reported_leak_bytes += 300e6
        else:
            self.reported_leak_bytes = 0.0
        temp = 92 + rng.gauss(0, 0.6) if "reported_gpu_hot" in act else 70 + rng.gauss(0, 1.0)
        util = 0.1 if "reported_gpu_idle" in act else 0.85
        values = {
            "gpu_reported_temperature_celsius": round(temp, 1),
            "gpu_reported_utilization_ratio": round(min(1.0, max(0.0, util + rng.gauss(0, 0.03))), 3),
            "gpu_reported_memory_used_bytes": float(round(40e9 + self.reported_leak_bytes
                                                          + rng.gauss(0, 0.05e9))),
            "gpu_reported_memory_total_bytes": 80e9,
        }
        for name, value in values.items():
            ex.set(name, {}, value if ex.redis_up else None)

    # ---- system ------------------------------------------------------------------------
    def system(self, minute: int, ex: Exporter, act: dict) -> None:
        rng, load = self.rng["system"], daily_load(minute)
        cores = 8
        util = 0.35 + 0.25 * (load - 0.6) / 0.8 + rng.gauss(0, 0.04)
        if "host_cpu" in act:
            util = 0.96 + rng.gauss(0, 0.01)
        util = min(0.995, max(0.02, util))
        seconds = 60.0 * cores
        iowait = 0.01 * seconds
        busy = util * seconds
        for mode, value in (("user", 0.7 * busy), ("system", 0.3 * busy), ("iowait", iowait),
                            ("idle", seconds - busy - iowait), ("guest", 0.0)):
            ex.inc("system_cpu_seconds_total", {"mode": mode}, round(value, 2))
        ex.set("system_cpus", {}, float(cores))
        total = 64e9
        used = 0.55 + 0.05 * (load - 1) / 0.4 + rng.gauss(0, 0.01)
        if "host_memory" in act:
            used = 0.95 + rng.gauss(0, 0.005)
        ex.set("system_memory_total_bytes", {}, total)
        ex.set("system_memory_available_bytes", {}, float(round(total * (1 - used))))
        if "disk_filling" in act:
            self.disk_extra += 30e9 / 60
        else:
            self.disk_extra = 0.0
        root = {"device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
        data = {"device": "/dev/sdb1", "fstype": "xfs", "mountpoint": "/data"}
        ex.set("system_filesystem_size_bytes", root, 500e9)
        ex.set("system_filesystem_avail_bytes", root,
               float(round(175e9 - 50e6 * minute / 60 - self.disk_extra + rng.gauss(0, 0.3e9))))
        ex.set("system_filesystem_size_bytes", data, 2e12)
        ex.set("system_filesystem_avail_bytes", data,
               float(round(1.2e12 - 20e6 * minute / 60 + rng.gauss(0, 1e9))))
        ex.set("agent_exporter_collector_success", {"collector": "host"}, 1.0)

    # ---- the exporter's own health -------------------------------------------------------
    def exporter_health(self, minute: int, ex: Exporter, act: dict, events: bool) -> None:
        rng = self.rng["exporter"]
        ex.set("agent_exporter_collector_success", {"collector": "redis_state"},
               1.0 if ex.redis_up else 0.0)
        if not events:
            return
        # Critical errors on events:errors:critical: a few a day, one a minute in the incident.
        if "critical_errors" in act or self.rng["errors"].random() < 1 / 240:
            ex.inc("agent_errors_total", {"kind": "critical", "component": "trainer"})
        for source, _ in self.SOURCES:
            invalid = poisson(rng, 0.003)
            if "invalid_events" in act and source == "events:tasks:updates":
                # 15 % of the ~30 task updates a minute fail validation
                invalid = poisson(rng, 0.15 / 0.85 * 30 * daily_load(minute))
            if invalid:
                ex.inc("agent_exporter_events_invalid_total",
                       {"source": source, "reason": "schema"}, invalid)
        if "series_overflow" in act:
            ex.inc("agent_exporter_series_overflow_total", {"metric": "agent_tasks_total"}, 5)
        if "events_lost" in act and minute in (act["events_lost"].start,
                                                act["events_lost"].start + 4):
            ex.inc("agent_exporter_events_lost_total", {"source": "events:tasks:updates"}, 20)


def simulate(timeline: Timeline) -> Store:
    return Simulation(timeline).run()


# --------------------------------------------------------------------------------------------
# promtool test file
# --------------------------------------------------------------------------------------------


COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
GAP = "gap"  # a sample Prometheus never took (it was down): no staleness marker either


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


def samples(name: str, values: list[float | None], gaps: set[int],
            per_minute: int) -> list[float | str | None]:
    """The scrapes of one series, `per_minute` a minute. The events of simulated minute m happen
    during [m, m + 1): a scrape at m sees the state after minute m - 1; in between, a counter
    rises evenly (from 0 after a restart) and a gauge takes its new value."""
    counter = name.split("{")[0].endswith(COUNTER_SUFFIXES)
    out: list[float | str | None] = []
    for minute, value in enumerate(values):
        if minute in gaps:
            out += [GAP] * per_minute
            continue
        before = values[minute - 1] if minute > 0 else None
        out.append(before)
        for k in range(1, per_minute):
            if value is None or not counter:
                out.append(value)
            else:
                start = before if before is not None and before <= value else 0.0
                out.append(start + (value - start) * k / per_minute)
    return out


def series_values(values: list[float | str | None]) -> str:
    """promtool's series notation: runs compressed (`vxN`), `stale` where a series stops, `_`
    where there is no sample."""
    out: list[str] = []
    i, n, previous_present = 0, len(values), False
    while i < n:
        v = values[i]
        j = i
        while j + 1 < n and values[j + 1] == v:
            j += 1
        run = j - i + 1
        if v is None or v == GAP:
            if previous_present and v is None:
                out.append("stale")
                run -= 1
            if run:
                out.append(f"_x{run}" if run > 1 else "_")
            previous_present = False
        else:
            assert isinstance(v, float)
            out.append(f"{_fmt(v)}x{run - 1}" if run > 2 else " ".join([_fmt(v)] * run))
            previous_present = True
        i = j + 1
    return " ".join(out)


def group_eval_order(rule_files: list[str]) -> list[str]:
    """Recording groups first, then alert groups, then the score (it reads ALERTS)."""
    import yaml

    names: list[str] = []
    for path in rule_files:
        with open(path) as fh:
            names += [g["name"] for g in yaml.safe_load(fh)["groups"]]
    last = [n for n in names if "performance-score" in n]
    rules = [n for n in names if n.endswith(".rules") and n not in last]
    alerts = [n for n in names if n.endswith(".alerts")]
    return rules + alerts + last


# Alerts that report no fault: the heartbeat, and the ranking that carries seed 000's insight.
NOT_FAULTS = ("Watchdog", "AgentPerformanceRanking")


def render(timeline: Timeline, rule_files: list[str], step: int = 60,
           store: Store | None = None) -> str:
    """A promtool test file: the simulated input scraped every `step` seconds (60 or a divisor),
    rules evaluated and ALERTS (pending and firing) queried at the same interval."""
    import yaml

    store = store or simulate(timeline)
    per_minute = 60 // step
    input_series = [{"series": k, "values": series_values(samples(k, v, store.gaps, per_minute))}
                    for k, v in sorted(store.series.items())]
    queries = [{"expr": f'ALERTS{{alertname!~"{"|".join(NOT_FAULTS)}"}}', "eval_time": f"{t}s", "exp_samples": []}
               for t in range(0, timeline.minutes * 60, step)]
    doc = {
        "rule_files": rule_files,
        "evaluation_interval": f"{step}s",
        "group_eval_order": group_eval_order(rule_files),
        "tests": [{"interval": f"{step}s", "input_series": input_series,
                   "promql_expr_test": queries}],
    }
    return yaml.safe_dump(doc, width=1 << 30, sort_keys=False)
