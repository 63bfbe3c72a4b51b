"""Every dashboard query against live data: redis-server, the exporter fed by the publisher API,
and Prometheus with the repo's recording and alert rules.

Grafana is not available here, so the test does what Grafana would: it expands the variables
("All" of every filter, `$__rate_interval` from Grafana's formula) and sends each panel target,
variable and annotation query to Prometheus' HTTP API. Each must parse and return data; the few
that a two-minute-old stack cannot fill are declared below with the reason.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import yaml

from exporter import contract
from exporter.demo.records import Seed004Collectors
from exporter.publisher import Publisher
from tests.support.compose_config import RECORD_SECTIONS, compose_sections
from tests.support.dashboards import expand, label_values, metric_names, panels, query_variables
from tests.support.dashboards import load as load_dashboards
from tests.support.metric_list import documented
from tests.support.procs import REPO, wait_until
from tests.support.prometheus import SCRAPE_SECONDS, Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = REPO / "prometheus" / "rules"

STEP_SECONDS = 2  # the query_range step, Grafana's $__interval
# Grafana: $__rate_interval = max($__interval + scrape interval, 4 × scrape interval).
RATE_INTERVAL = f"{max(STEP_SECONDS + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)}s"
WINDOW_SECONDS = 60  # the dashboard time range the queries cover
GRAFANA = {"__rate_interval": RATE_INTERVAL, "__interval": f"{STEP_SECONDS}s",
           "__range": f"{WINDOW_SECONDS}s"}
DATA_TIMEOUT = 75  # for every query to return data once Prometheus scrapes the exporter

# Panels a fresh stack cannot fill, (dashboard uid, panel title) → why. Their queries must parse.
MAY_BE_EMPTY = {
    ("agent-exporter-tasks", "Anomaly z-scores"):
        "the z-score rules compare with the previous hour (baseline offset 10m, the signal at "
        "offset 70m): empty until Prometheus holds 70 minutes of history",
    **{(uid, title): "the smoothed imbalance compares the agents busy for a whole 10 minutes (a "
                     "full window): empty until Prometheus holds 10 minutes of them"
       for uid, title in (("agent-exporter-agents", "Load imbalance"),
                          ("agent-exporter-overview", "Load imbalance (10 min)"))},
    ("agent-exporter-gpu", "Memory growth per 5 minutes"):
        "the growth compares with the memory 5 minutes earlier: empty until Prometheus holds 5 "
        "minutes of the GPU the traffic reports",
}
ANNOTATIONS_MAY_BE_EMPTY = ("annotations mark firing alerts of a category or severity; in two "
                            "minutes only Watchdog (info, system) fires")
NVML_REASON = ("NVML series exist only on a host with an NVIDIA driver; this host reports "
               "gpu_nvml_available 0")

EXPORTER_CONFIG = """
series_budgets:
  queue_backlog: 2      # three queues in the traffic: one label set overflows
series_ttls:
  startup_probe: 1      # published once: expires on the next scrapes
llm:
  prices:               # o3-pro has none: the unpriced-calls panel
    gpt-4o: {input: 2.5, output: 10, cached_input: 1.25}
    claude-sonnet-4: {input: 3, output: 15, cached_input: 0.3}
    text-embedding-3-small: {input: 0.02, output: 0}
  daily_budget_usd: {swarm: 50, each_agent: 10}
""" + yaml.safe_dump(compose_sections(*RECORD_SECTIONS))  # seed 004's records, as the stack maps
AGENTS = {  # agent → (status, tasks, queue depth, load)
    "ai-engineer": ("busy", 3, 4, 0.8),
    "data-engineer": ("idle", 1, 0, 0.2),
    "ml-engineer": ("busy", 2, 1, 0.6),
    "context-manager": ("offline", 0, 0, 0.0),
}
TASK_SECONDS = (40, 200, 900, 2400)  # the last one breaks the 1800 s SLA
RAG_QUERIES = (  # (seconds, success, cache hit, fallback, relevance, confidence)
    (0.05, True, True, False, 0.9, 0.85),
    (0.3, True, False, False, 0.7, 0.6),
    (1.2, True, False, True, 0.5, 0.4),
    (3.0, False, False, False, 0.2, 0.1),
)
WORKFLOW_STEPS = (("data-pipeline", "extract", 40), ("data-pipeline", "transform", 700),
                  ("model-training", "train", 200))
LLM_CALLS = (  # (agent, provider, model, operation, input tokens, cached, output tokens)
    ("ai-engineer", "anthropic", "claude-sonnet-4", "chat", 4000, 3000, 500),
    ("ml-engineer", "openai", "gpt-4o", "chat", 1500, 0, 300),
    ("ml-engineer", "openai", "o3-pro", "chat", 800, 0, 2500),
    ("context-manager", "openai", "text-embedding-3-small", "embeddings", 300, 0, 0),
)


def seed_state(client: redis.Redis) -> None:
    """The Redis keys that agents and training jobs keep (seed 000), for the redis_state
    collector."""
    client.hset("context:project:proj-1", mapping={"status": "training"})
    client.hset("context:project:proj-2", mapping={"status": "completed"})
    client.sadd("metrics:agents:active", "ai-engineer", "ml-engineer")
    client.hset("metrics:agent:ai-engineer:workload", mapping={"current_tasks": 3})
    client.hset("metrics:agent:ai-engineer:performance",
                mapping={"tasks_completed": 12, "notes": "not a number"})
    client.hset("metrics:gpu:current", mapping={
        "utilization_percent": 65, "memory_used_mb": 8000, "memory_total_mb": 16000,
        "temperature_celsius": 71, "power_draw_watts": 210})


def publish_round(events: Publisher, streams: Publisher, client: redis.Redis,
                  collectors: Seed004Collectors, i: int) -> None:
    """One round of every event type, plus what the exporter must reject or count as lost."""
    for agent, (status, tasks, queue, load) in AGENTS.items():
        events.agent_status(agent, status, tasks, queue_depth=queue, load=load)
    for n, agent in enumerate(a for a, (status, *_) in AGENTS.items() if status == "busy"):
        seconds = TASK_SECONDS[(i + n) % len(TASK_SECONDS)]
        events.task_update(f"t{i}-{n}", agent, "failed" if (i + n) % 5 == 0 else "done", seconds)
        events.task_update(f"t{i}-{n}-next", agent, "running")
    for project, start in (("proj-1", 4.0), ("proj-2", 2.0)):
        events.training_progress(project, step=100 * i, loss=start / (1 + 0.05 * i),
                                 wer=0.5 / (1 + 0.02 * i), accuracy=0.6 + 0.001 * i)
    for source in ("docs", "code"):
        for seconds, success, hit, fallback, relevance, confidence in RAG_QUERIES:
            events.rag_query(seconds, success, cache_hit=hit, fallback=fallback,
                             relevance_score=relevance, confidence_score=confidence,
                             source=source)
    for workflow, step, seconds in WORKFLOW_STEPS:
        streams.workflow_step(workflow, step, seconds + i % 7)
    for agent, provider, model, operation, tokens, cached, output in LLM_CALLS:
        events.llm_call(agent, provider, model, operation, 1.5 + i % 4, input_tokens=tokens,
                        cached_input_tokens=cached, output_tokens=output,
                        time_to_first_token_seconds=0.3 if output else None)
    events.llm_call("ml-engineer", "openai", "gpt-4o", "chat", 0.2, "error", error_type="429")
    events.error("task", "ai-engineer", "tool call timed out")
    events.metric("queue_backlog", i % 10, tags={"queue": f"q{i % 3}"})
    for _ in range(3):  # seed 004's coordination, query-analysis and user-experience records
        collectors.request()
    collectors.flush()
    client.publish(contract.TASKS, b'{"taskId": "no-agent-no-status"}')
    # A publisher whose sequence skips a number every round: one lost event each.
    client.publish(contract.AGENTS, orjson.dumps({"agentType": "context-manager",
                                                  "status": "offline", "_pub": "gappy",
                                                  "_seq": 2 * i + 1, "timestamp": time.time()}))


class Traffic:
    """Publishes a round every quarter second until stopped, so counters keep rising while
    Prometheus scrapes them (a ratio of rates needs increases inside its window)."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.events = Publisher(self.client)
        self.streams = Publisher(self.client, transport="streams")
        self.collectors = Seed004Collectors(self.events, random.Random(1))
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _run(self) -> None:
        i = 0
        try:
            while not self.stop.is_set():
                publish_round(self.events, self.streams, self.client, self.collectors, i)
                i += 1
                self.stop.wait(0.25)  # pacing, not synchronisation
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def __enter__(self) -> Traffic:
        seed_state(self.client)
        self.events.metric("startup_probe", 1)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.close()


def has_data(response: dict[str, Any]) -> bool:
    """At least one sample that is a number (NaN draws nothing)."""
    data = response["data"]
    if data["resultType"] == "scalar":
        values = [data["result"][1]]
    else:
        values = [v for series in data["result"]
                  for v in ([series["value"][1]] if "value" in series else
                            [value for _, value in series["values"]])]
    return any(not math.isnan(float(v)) for v in values)


class Checker:
    """Runs queries the way a dashboard would and says what is wrong with each."""

    def __init__(self, prometheus: Prometheus) -> None:
        self.prometheus = prometheus

    def problem(self, expr: str, instant: bool) -> str | None:
        """None if the query parses and returns data, else why not."""
        end = time.time()
        responses = [self.prometheus.api("query_range", query=expr, start=end - WINDOW_SECONDS,
                                         end=end, step=STEP_SECONDS)]
        if instant:
            responses.append(self.prometheus.api("query", query=expr, time=end))
        for response in responses:
            if response["status"] != "success":
                return f"error: {response.get('errorType')}: {response.get('error')}"
            if not has_data(response):
                return "no data"
        return None

    def parses(self, expr: str) -> str | None:
        response = self.prometheus.api("query", query=expr)
        return None if response["status"] == "success" else f"error: {response.get('error')}"


def nvml_series() -> set[str]:
    """What the GPU collector reads through NVML, and the rules derived from it alone (the
    `:any_source` rules also read the GPU the traffic reports in Redis: they must have data)."""
    names = {n for n in documented() if n.startswith("gpu_")
             and not n.startswith("gpu_reported_") and n != "gpu_nvml_available"}
    gpu_rules = yaml.safe_load((RULES / "gpu.rules.yml").read_text())["groups"]
    return names | {rule["record"] for group in gpu_rules for rule in group["rules"]
                    if "any_source" not in rule["expr"] and "gpu_reported_" not in rule["expr"]}


def dashboard_queries() -> list[tuple[str, str, str, bool, str | None]]:
    """(dashboard uid, where, expanded PromQL, instant?, why it may be empty) for every query."""
    queries = []
    for dashboard in load_dashboards().values():
        uid = dashboard["uid"]
        for panel in panels(dashboard):
            reason = MAY_BE_EMPTY.get((uid, panel["title"]))
            for target in panel["targets"]:
                queries.append((uid, f"{panel['title']} [{target['refId']}]",
                                expand(target["expr"], dashboard, GRAFANA),
                                target.get("instant", False), reason))
        for variable in query_variables(dashboard):
            selector, label = label_values(variable)
            queries.append((uid, f"variable {variable['name']}",
                            expand(f"count by ({label}) ({selector})", dashboard, GRAFANA), False,
                            None))
        for annotation in dashboard["annotations"]["list"]:
            queries.append((uid, f"annotation {annotation['name']}",
                            expand(annotation["expr"], dashboard, GRAFANA), False,
                            ANNOTATIONS_MAY_BE_EMPTY))
    return queries


def failures(check: Checker, queries: list, excused: Callable[[str], str | None]) -> list[str]:
    found = []
    for uid, where, expr, instant, reason in queries:
        reason = reason or excused(expr)
        problem = check.parses(expr) if reason else check.problem(expr, instant)
        if problem:
            found.append(f"{uid} / {where}: {problem}\n    {expr}")
    return found


def test_every_panel_query_returns_data(tmp_path: Path, redis_url: str, start_exporter) -> None:
    queries = dashboard_queries()
    assert all("$" not in expr for _, _, expr, _, _ in queries)
    exporter = start_exporter(redis_url, "--source", "both", config=EXPORTER_CONFIG)
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{exporter.port}"])
    check = Checker(prometheus)
    with Traffic(redis_url) as traffic:
        try:
            wait_until(lambda: prometheus.api("query", query="agent_exporter_build_info")
                       ["data"]["result"], timeout=30, interval=0.5,
                       message="Prometheus to scrape the exporter")
            nvml = prometheus.api("query", query="max(gpu_nvml_available)")["data"]["result"]
            assert nvml, "the GPU collector did not report gpu_nvml_available"
            gpu_host = float(nvml[0]["value"][1]) == 1
            nvml_only = nvml_series()

            def excused(expr: str) -> str | None:
                """NVML-only queries on a GPU-less host, unless they spell out a fallback."""
                names = metric_names(expr)
                if gpu_host or "vector(" in expr or not names or not names <= nvml_only:
                    return None
                return NVML_REASON

            remaining: list[str] = []

            def all_have_data() -> bool:
                assert traffic.error is None, f"publishing failed: {traffic.error!r}"
                remaining[:] = failures(check, queries, excused)
                if any(": error:" in problem for problem in remaining):
                    return True  # a query that does not parse will not start to
                return not remaining

            try:
                wait_until(all_have_data, timeout=DATA_TIMEOUT, interval=1,
                           message="every dashboard query to return data")
            except AssertionError:
                pass  # the list below says which queries are still empty
            assert not remaining, (f"{len(remaining)} of {len(queries)} dashboard queries fail:\n"
                                   + "\n".join(remaining))

            # The check is not vacuous: a misspelt metric or a filter on a label the recorded
            # series lacks returns nothing, and a syntax error is reported as such.
            assert check.problem('job:performance_score:overal{job=~".+"}', False) == "no data"
            assert check.problem('job:performance_score:overall{instance=~".+"}', False) \
                == "no data"
            assert check.problem("sum by (job (up)", False).startswith("error:")
        finally:
            prometheus.proc.stop()
