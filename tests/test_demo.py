"""`agent-exporter demo` against a real redis-server and a real exporter process: the traffic
covers every event domain, a seed fixes the events, and `--incidents` produces the signals the
alert rules look for. Time is compressed with --speed so each run takes seconds.
"""
from __future__ import annotations

import math
import os
import random
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis
import yaml

from exporter.demo import INCIDENT_NAMES
from exporter.demo.engine import Sim
from exporter.demo.gpu_host import GPU_INTERVAL_SECONDS, GpuHost
from exporter.publisher import Publisher
from exporter.thresholds import GPU_TEMPERATURE_HIGH_CELSIUS
from tests.support.compose_config import compose_exporter_config, compose_sections
from tests.support.procs import REPO, Exporter, require_binary, value, wait_until

pytestmark = pytest.mark.integration

DEMO_AGENTS = 12  # the demo's default; agent ids are <type>-<n>
# The compose stack's exporter config: LLM prices and budgets (a unit test checks they price
# every demo model) and the mapping of seed 004's records, which the demo sends too.
LLM = compose_sections("llm")["llm"]
STACK_CONFIG = compose_exporter_config()


def run_demo(redis_url: str, *args: str) -> list[tuple[str, dict[str, Any]]]:
    """Run the demo to the end of --duration; return every (channel, event) it published."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.psubscribe("events:*")
    wait_until(lambda: (m := pubsub.get_message(timeout=0.5)) and m["type"] == "psubscribe",
               message="psubscribe confirmation")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_EXPORTER_")}
    done = subprocess.run([sys.executable, "-m", "exporter", "demo", "--redis-url", redis_url,
                           "--log-level", "warning", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    events = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "pmessage":
            events.append((message["channel"].decode(), orjson.loads(message["data"])))
    pubsub.close()
    client.close()
    return events


def settled(exporter: Exporter, published: int) -> dict:
    """Samples once the exporter has handled every published event (valid or not)."""
    def handled() -> dict | None:
        samples = exporter.samples()
        seen = sum(v for (name, _), v in samples.items() if name in (
            "agent_exporter_events_total", "agent_exporter_events_invalid_total"))
        return samples if seen >= published else None

    return wait_until(handled, timeout=20, message=f"the exporter to handle {published} events")


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, lbls), v in samples.items()
               if n == name and set(labels.items()) <= set(lbls))


def test_demo_traffic_reaches_every_domain(redis_url: str, start_exporter) -> None:
    exporter = start_exporter(redis_url, config=STACK_CONFIG)
    events = run_demo(redis_url, "--seed", "3", "--speed", "60", "--rate", "100",
                      "--duration", "5")
    samples = settled(exporter, len(events))

    channels = Counter(channel.rsplit(":", 1)[0] if channel.startswith("events:errors:")
                       else channel for channel, _ in events)
    assert set(channels) == {"events:agents:status", "events:tasks:updates",
                             "events:training:progress", "events:rag:queries",
                             "events:workflows:steps", "events:errors", "events:metrics",
                             "events:llm:calls"}
    assert total(samples, "agent_busy") >= 1
    assert len([k for k in samples if k[0] == "agent_last_seen_timestamp_seconds"]) == DEMO_AGENTS
    assert total(samples, "agent_tasks_total", status="done") > 0
    assert total(samples, "agent_task_duration_seconds_count") > 0
    for project in ("proj-1", "proj-2", "proj-3"):
        loss = value(samples, "training_loss", project=project)
        wer = value(samples, "training_wer", project=project)
        assert loss is not None and 0 < loss < 5, (project, loss)
        assert wer is not None and 0 < wer <= 1
        assert value(samples, "training_metric", project=project, name="learning_rate") > 0
        assert value(samples, "training_project_status", project=project, status="training") == 1
    assert total(samples, "rag_cache_requests_total", result="hit") > 0
    assert total(samples, "rag_cache_requests_total", result="miss") > 0
    assert total(samples, "rag_relevance_score_count") > 0
    assert total(samples, "rag_queries_total", outcome="fallback") > 0
    assert total(samples, "workflow_step_duration_seconds_count") > 0
    assert total(samples, "agent_errors_total") > 0
    assert total(samples, "agent_success_rate") > 0           # seed-004 records
    origin = {"hostname": socket.gethostname(), "environment": "demo"}  # kept as labels
    assert value(samples, "swarm_total_agents", component="swarm", **origin) == DEMO_AGENTS
    assert total(samples, "agent_workload_current_tasks") > 0  # the state keys it keeps
    # LLM calls: every agent type's models, priced by the exporter, some input from the cache.
    models = {dict(labels)["gen_ai_request_model"] for name, labels in samples
              if name == "agent_llm_requests_total"}
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "text-embedding-3-small"} <= models
    assert total(samples, "agent_llm_cost_usd_total") > 0
    assert total(samples, "agent_llm_cache_read_input_tokens_total") > 0
    assert total(samples, "gen_ai_server_time_to_first_token_seconds_count") > 0
    assert total(samples, "gen_ai_client_token_usage_count", gen_ai_operation_name="embeddings") > 0
    assert total(samples, "agent_llm_unpriced_requests_total") == 0
    # Seed 004's coordination, query-analysis and user-experience records, as the stack maps
    # them: counters, histograms in base units, gauges.
    for counter in ("coordination_messages_total", "coordination_handoffs_total",
                    "query_analyses_total", "user_feedback_total"):
        assert total(samples, counter) > 0, counter
    for histogram in ("coordination_message_latency_seconds", "query_analysis_duration_seconds",
                      "query_routing_confidence_score", "query_selected_agents",
                      "user_response_duration_seconds", "user_first_response_duration_seconds",
                      "user_satisfaction_ratio"):
        assert total(samples, histogram + "_count") > 0, histogram
    first_response = (total(samples, "user_first_response_duration_seconds_sum")
                      / total(samples, "user_first_response_duration_seconds_count"))
    assert 0.1 < first_response < 5  # milliseconds sent, seconds exposed
    assert 0.8 < total(samples, "query_classification_accuracy_ratio") < 1
    assert total(samples, "coordination_active_sessions") > 0
    assert total(samples, "user_active_sessions") > 0
    # The simulated GPU host (seed 000 pattern 3): busy, cool, not full, no critical errors.
    assert 0.3 < total(samples, "gpu_reported_utilization_ratio") <= 1
    assert 0 < total(samples, "gpu_reported_temperature_celsius") < GPU_TEMPERATURE_HIGH_CELSIUS
    assert (total(samples, "gpu_reported_memory_used_bytes")
            < 0.95 * total(samples, "gpu_reported_memory_total_bytes"))
    assert total(samples, "gpu_reported_power_watts") > 0
    assert total(samples, "agent_errors_total", kind="critical") == 0
    # Healthy traffic is valid traffic.
    assert total(samples, "agent_exporter_events_invalid_total") == 0


def strip(events: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Events without what differs between runs by design: send time and publisher id."""
    return [(channel, {k: v for k, v in event.items() if k not in ("timestamp", "_pub")})
            for channel, event in events]


def test_same_seed_gives_the_same_events(redis_url: str) -> None:
    args = ("--speed", "50", "--duration", "2", "--incidents")
    first = strip(run_demo(redis_url, "--seed", "11", *args))
    again = strip(run_demo(redis_url, "--seed", "11", *args))
    other = strip(run_demo(redis_url, "--seed", "12", *args))
    assert len(first) > 200
    assert first == again
    assert first != other


def test_streams_transport_writes_streams_only(redis_url: str) -> None:
    events = run_demo(redis_url, "--seed", "1", "--speed", "20", "--duration", "1",
                      "--transport", "streams")
    client = redis.Redis.from_url(redis_url)
    assert events == []
    assert client.xlen("events:agents:status") > 0
    assert client.xlen("events:training:progress") > 0


def test_bad_flags_exit_2(redis_url: str) -> None:
    for bad in (["--rate", "0"], ["--agents", "0"], ["--incidents", "no-such-incident"]):
        done = subprocess.run([sys.executable, "-m", "exporter", "demo", "--redis-url", redis_url,
                               "--duration", "1", *bad], cwd=REPO, capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 2, (bad, done.stderr)


def test_incidents_produce_their_signals(redis_url: str, start_exporter) -> None:
    """All incidents begin within 540 simulated seconds and last at least 600: at 600 every one
    is under way. Each check is the signal its alert rule reads."""
    exporter = start_exporter(redis_url, config=STACK_CONFIG)
    events = run_demo(redis_url, "--seed", "5", "--speed", "100", "--rate", "500",
                      "--duration", "6", "--incidents")
    s = settled(exporter, len(events))
    seen = {agent: value(s, "agent_last_seen_timestamp_seconds", agent=agent)
            for (name, labels) in s if name == "agent_last_seen_timestamp_seconds"
            for agent in [dict(labels)["agent"]]}
    tasks = {agent: value(s, "agent_current_tasks", agent=agent) for agent in seen}

    # agent-silent (AgentNotSeen): the last agent stopped reporting, the others did not.
    silent = "error-coordinator-2"
    assert seen[silent] < min(t for a, t in seen.items() if a != silent) - 2
    # agents-offline (SwarmAvailabilityLow): availability under 80 %.
    assert total(s, "agent_available") / len(seen) < 0.8
    # load-imbalance (AgentLoadImbalanced): one agent holds most of the tasks.
    assert tasks["ai-engineer-1"] > 3 * (sum(tasks.values()) - tasks["ai-engineer-1"]) / 11
    # agent-failing (AgentErrorRateHigh): over 25 % of its finished tasks failed.
    failed = value(s, "agent_tasks_total", agent="data-engineer-1", status="failed") or 0
    done = value(s, "agent_tasks_total", agent="data-engineer-1", status="done") or 0
    assert failed >= 10 and failed / (failed + done) > 0.25
    # sla-breach (TaskSla*): tasks over the 1800 s SLA; task-burst: a wave of short tasks.
    within = total(s, "agent_task_duration_seconds_bucket", le="1800.0")
    assert total(s, "agent_task_duration_seconds_count") - within > 20
    assert total(s, "agent_task_duration_seconds_bucket", le="15.0") > 50
    # slow-step (WorkflowStepSlow): the evaluate step reports steps over 600 s.
    evaluate = dict(workflow="model-training", step="evaluate")
    assert (total(s, "workflow_step_duration_seconds_count", **evaluate)
            - total(s, "workflow_step_duration_seconds_bucket", le="600.0", **evaluate)) > 0
    # loss-high, loss-diverging, training-stalled (Training*).
    assert value(s, "training_loss", project="proj-2") > 5
    assert math.isnan(value(s, "training_loss", project="proj-3"))
    updated = {p: value(s, "training_last_update_timestamp_seconds", project=p)
               for p in ("proj-1", "proj-2", "proj-3")}
    assert updated["proj-1"] < min(updated["proj-2"], updated["proj-3"]) - 1
    # rag-latency, rag-failures, rag-cache-cold, rag-low-confidence (Rag*).
    queries = total(s, "rag_query_duration_seconds_count")
    assert queries - total(s, "rag_query_duration_seconds_bucket", le="2.5") > 0.03 * queries
    assert total(s, "rag_queries_total", outcome="failure") > 0.03 * queries
    hits = total(s, "rag_cache_requests_total", result="hit")
    assert hits / total(s, "rag_cache_requests_total") < 0.65
    scored = total(s, "rag_confidence_score_count")
    assert total(s, "rag_confidence_score_bucket", le="0.5") > 0.08 * scored
    # invalid-events (ExporterEventsInvalid): malformed RAG events were rejected, and counted
    # once: not also as lost (ExporterEventsLost stays quiet).
    assert total(s, "agent_exporter_events_invalid_total", source="events:rag:queries") > 10
    assert total(s, "agent_exporter_events_lost_total") == 0
    # gpu-hot (GpuTemperatureHigh, GpuTemperatureCritical, GpuHotDuringCriticalErrors): the
    # GPU reported through Redis runs above 85 °C while critical errors come in.
    assert value(s, "gpu_reported_temperature_celsius") > GPU_TEMPERATURE_HIGH_CELSIUS
    assert total(s, "agent_errors_total", kind="critical") > 0


def test_llm_incidents_produce_their_signals(redis_url: str, start_exporter) -> None:
    """The two LLM incidents alone, from 30 and 60 simulated seconds to the end at 500, so the
    counters show them: the runaway agent's spend outpaces its daily budget and the swarm's,
    and openai refuses enough calls for the error and rate-limit ratio alerts."""
    incidents = ("llm-cost-spike", "llm-provider-outage")
    assert all(name in INCIDENT_NAMES for name in incidents)
    exporter = start_exporter(redis_url, config=STACK_CONFIG)
    events = run_demo(redis_url, "--seed", "7", "--speed", "100", "--duration", "5",
                      "--incidents", ",".join(incidents))
    s = settled(exporter, len(events))

    spend: dict[str, float] = {}  # per agent, all its models
    for (name, labels), v in s.items():
        if name == "agent_llm_cost_usd_total":
            agent = dict(labels)["agent"]
            spend[agent] = spend.get(agent, 0.0) + v
    runaway = max(spend, key=spend.__getitem__)
    assert runaway == "ml-engineer-1"
    per_day = spend[runaway] / (500 - 30) * 86400  # its pace while it looped
    budgets = LLM["daily_budget_usd"]
    assert per_day > budgets["each_agent"] and per_day > budgets["swarm"]
    assert spend[runaway] > 5 * max(v for agent, v in spend.items() if agent != runaway)

    openai = total(s, "agent_llm_requests_total", gen_ai_provider_name="openai")
    failed = total(s, "agent_llm_requests_total", gen_ai_provider_name="openai", outcome="error")
    limited = total(s, "gen_ai_client_operation_duration_seconds_count",
                    gen_ai_provider_name="openai", error_type="429")
    assert openai > 100 and failed / openai > 0.3 and limited / openai > 0.15
    anthropic = total(s, "agent_llm_requests_total", gen_ai_provider_name="anthropic")
    assert total(s, "agent_llm_requests_total", gen_ai_provider_name="anthropic",
                 outcome="error") < 0.05 * anthropic


HOT = (1800, 2700)  # the gpu-hot incident's 15 minutes, after half an hour of healthy readings
TRACE_SECONDS = 5400


def gpu_host_series() -> list[dict[str, str]]:
    """promtool input series: the demo GPU host's readings every 30 s as the key check exposes
    them, its critical errors as agent_errors_total, and a project in training throughout."""
    host = GpuHost(Sim(1.0), cast(Publisher, None), random.Random(5))  # reading() publishes nothing
    fields = {"temperature_celsius": ("gpu_reported_temperature_celsius", 1),
              "utilization_percent": ("gpu_reported_utilization_ratio", 0.01),
              "memory_used_mb": ("gpu_reported_memory_used_bytes", 1048576),
              "memory_total_mb": ("gpu_reported_memory_total_bytes", 1048576)}
    values: dict[str, list[str]] = {name: [] for name, _ in fields.values()}
    errors: list[str] = []
    for t in range(0, TRACE_SECONDS + 1, GPU_INTERVAL_SECONDS):
        host.overheating = HOT[0] <= t < HOT[1]
        reading = host.reading()
        for field, (name, scale) in fields.items():
            values[name].append(f"{reading[field] * scale:g}")
        errors.append(str(sum(e != "_" for e in errors) + 1) if host.overheating
                      else errors[-1] if errors else "_")
    target = 'job="agent-exporter", instance="exporter:9842"'
    series = [{"series": f"{name}{{{target}}}", "values": " ".join(v)}
              for name, v in values.items()]
    series.append({"series": f'agent_errors_total{{{target}, kind="critical", '
                             'component="ml-engineer"}', "values": " ".join(errors)})
    series.append({"series": f'training_project_status{{{target}, project="proj-1", '
                             'status="training"}', "values": f"1x{TRACE_SECONDS // 30}"})
    return series


def test_gpu_hot_incident_fires_the_gpu_temperature_alerts(tmp_path: Path) -> None:
    """The demo GPU host's readings through the real rules (promtool, simulated time): healthy,
    no GPU alert at all; 10 minutes into gpu-hot, the two temperature alerts and the correlation
    with critical errors fire; 15 minutes after it, all have resolved."""
    rules = REPO / "prometheus"
    order = yaml.safe_load((rules / "tests" / "gpu_test.yml").read_text())["group_eval_order"]
    firing = 'count by (alertname) (ALERTS{alertstate="firing", alertname=~"Gpu.*"})'
    incident = ("GpuHotDuringCriticalErrors", "GpuTemperatureCritical", "GpuTemperatureHigh")
    checks = [(HOT[0] - 60, ()), (HOT[0] + 600, incident), (HOT[1] + 900, ()),
              (TRACE_SECONDS, ())]
    test = {
        "rule_files": [str(path) for path in sorted((rules / "rules").glob("*.yml"))],
        "evaluation_interval": "30s",
        "group_eval_order": order,
        "tests": [{
            "interval": f"{GPU_INTERVAL_SECONDS}s",
            "input_series": gpu_host_series(),
            "promql_expr_test": [
                {"expr": firing, "eval_time": f"{t}s",
                 "exp_samples": [{"labels": f'{{alertname="{name}"}}', "value": 1}
                                 for name in names]}
                for t, names in checks],
        }],
    }
    path = tmp_path / "gpu_hot_test.yml"
    path.write_text(yaml.safe_dump(test))
    done = subprocess.run([require_binary("promtool"), "test", "rules", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
