"""Redis-state collector: key checks against a real redis-server, scraped from the real exporter.

The seeds' keys are written here in the shapes seed 000 writes them (patterns 2-4), so the
built-in checks are exercised against what agents really leave in Redis.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.collectors.key_checks import DEFAULT_KEY_CHECKS, parse_key_checks
from exporter.collectors.redis_state import RedisStateCollector
from exporter.collectors.registry import CollectorSettings
from exporter.config import ConfigError, load
from tests.support.procs import REPO, RedisServer, parse_samples, require_binary, value, wait_until


def write_seed_keys(client) -> None:
    client.sadd("metrics:agents:active", "coder", "researcher")
    client.hset("metrics:agent:coder:workload", "current_tasks", 3)
    client.hset("metrics:agent:researcher:workload", "current_tasks", 0)
    client.hset("metrics:agent:coder:performance",
                mapping={"tasks_completed": 41, "avgDurationSeconds": 12.5,
                         "last_updated": "2025-01-07T10:00:00Z"})
    client.hset("context:project:proj-1", mapping={"status": "training", "owner": "ml-team"})
    client.lpush("context:project:proj-1:history", "created")  # same prefix, not a project
    client.hset("metrics:gpu:current",
                mapping={"utilization_percent": 87, "memory_used_mb": 20480,
                         "memory_total_mb": 40960, "temperature_celsius": 71,
                         "power_draw_watts": 250.5})


def series(samples: dict, name: str) -> dict[frozenset, float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def test_seed_keys_scraped_through_builtin_checks(redis_server, redis_url, start_exporter):
    client = redis_server.client()
    write_seed_keys(client)
    exporter = start_exporter(redis_url)
    text = exporter.scrape()
    s = parse_samples(text)

    assert value(s, "agent_active_agents") == 2
    assert series(s, "agent_workload_current_tasks") == {
        frozenset({("agent", "coder")}): 3, frozenset({("agent", "researcher")}): 0}
    assert value(s, "agent_performance_tasks_completed", agent="coder") == 41
    assert value(s, "agent_performance_avg_duration_seconds", agent="coder") == 12.5
    assert value(s, "agent_exporter_key_check_values_skipped",
                 check="metrics:agent:{agent}:performance", reason="non_numeric") == 1
    assert series(s, "training_project_status") == {
        frozenset({("project", "proj-1"), ("status", "training")}): 1}
    assert value(s, "agent_exporter_key_check_keys", check="context:project:{project}") == 1
    assert value(s, "gpu_reported_utilization_ratio") == pytest.approx(0.87)
    assert value(s, "gpu_reported_memory_used_bytes") == 20480 * 1048576
    assert value(s, "gpu_reported_memory_total_bytes") == 40960 * 1048576
    assert value(s, "gpu_reported_temperature_celsius") == 71
    assert value(s, "gpu_reported_power_watts") == 250.5
    assert value(s, "agent_exporter_collector_success", collector="redis_state") == 1

    promtool = require_binary("promtool")
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")

    # State changes are seen on the next scrape; a missing key is no series, not a 0.
    client.delete("metrics:agents:active", "metrics:agent:researcher:workload")
    client.hset("context:project:proj-1", "status", "evaluating")
    s = exporter.samples()
    assert value(s, "agent_active_agents") is None
    assert value(s, "agent_exporter_key_check_keys", check="metrics:agents:active") == 0
    assert series(s, "agent_workload_current_tasks") == {frozenset({("agent", "coder")}): 3}
    assert series(s, "training_project_status") == {
        frozenset({("project", "proj-1"), ("status", "evaluating")}): 1}


def test_example_user_checks(redis_server, redis_url, start_exporter):
    client = redis_server.client()
    client.rpush("queue:research:pending", "t1", "t2", "t3")
    client.rpush("queue:review:pending", "t4")
    client.xadd("stream:tasks:incoming", {"data": "{}"})
    client.xadd("stream:tasks:incoming", {"data": "{}"})
    client.zadd("schedule:tasks", {"a": 1, "b": 2, "c": 3, "d": 4})
    client.set("stats:rag:indexed_documents", "1234")
    client.hset("metrics:tasks:aggregated", mapping={
        "throughput_per_hour": 42, "sla_compliance_percent": 97.5, "avg_duration_seconds": 120})
    client.sadd("metrics:agents:active", "coder")  # built-ins stay on beside the user's checks

    exporter = start_exporter(redis_url,
                              config=(REPO / "examples" / "key-checks.yml").read_text())
    s = exporter.samples()
    assert series(s, "agent_queue_pending_tasks") == {
        frozenset({("queue", "research")}): 3, frozenset({("queue", "review")}): 1}
    assert value(s, "agent_incoming_task_entries") == 2
    assert value(s, "agent_scheduled_tasks", scheduler="default") == 4
    assert value(s, "rag_indexed_documents") == 1234
    assert value(s, "agent_tasks_reported_throughput_per_hour") == 42
    assert value(s, "agent_tasks_reported_sla_compliance_ratio") == pytest.approx(0.975)
    assert not series(s, "agent_tasks_reported_avg_duration_seconds")  # not in its fields:
    assert value(s, "agent_active_agents") == 1


def test_pattern_with_10000_keys_stays_within_its_bounds(redis_server, redis_url,
                                                         start_exporter):
    client = redis_server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(10_000):
        pipe.hset(f"metrics:agent:a{i}:workload", "current_tasks", i % 7)
    pipe.execute()
    exporter = start_exporter(redis_url, config="""
key_checks:
  - name: narrow
    pattern: "metrics:agent:{agent}:workload"
    type: hash
    metric: bounded_workload
    fields: {current_tasks: current_tasks}
    max_keys: 50
    scan_count: 100
    max_scan_calls: 3
""")
    started = time.monotonic()
    s = exporter.samples()
    elapsed = time.monotonic() - started

    assert elapsed < 2.0
    assert value(s, "agent_exporter_collector_success", collector="redis_state") == 1
    default = "metrics:agent:{agent}:workload"
    assert len(series(s, "agent_workload_current_tasks")) == 1000  # the default max_keys
    assert value(s, "agent_exporter_key_check_keys", check=default) == 1000
    assert value(s, "agent_exporter_key_check_keys_skipped", check=default) == 9000
    assert value(s, "agent_exporter_key_check_scan_truncated", check=default) == 0
    # Three SCAN calls of COUNT 100 cannot walk 10 000 keys: the walk stops and says so.
    assert len(series(s, "bounded_workload_current_tasks")) == 50
    assert value(s, "agent_exporter_key_check_scan_truncated", check="narrow") == 1
    assert 0 < value(s, "agent_exporter_key_check_keys_skipped", check="narrow") < 9950


def test_hung_redis_fails_the_check_fast_and_metrics_still_answer(tmp_path: Path,
                                                                  start_exporter):
    server = RedisServer(tmp_path / "hung").start()
    try:
        server.client().sadd("metrics:agents:active", "coder")
        exporter = start_exporter(server.url, config="collector_timeout_seconds: 2\n")
        assert value(exporter.samples(), "agent_active_agents") == 1

        server.proc.signal(signal.SIGSTOP)
        started = time.monotonic()
        s = exporter.samples()
        elapsed = time.monotonic() - started
        # Failed by its own socket timeout (0.5 s), well before the 2 s collector deadline.
        assert elapsed < 1.5
        assert value(s, "agent_exporter_collector_success", collector="redis_state") == 0
        assert value(s, "agent_exporter_collector_duration_seconds",
                     collector="redis_state") < 2
        assert value(s, "agent_active_agents") is None
        assert value(s, "agent_exporter_collector_success", collector="host") == 1
        assert value(s, "system_cpus") is not None
        assert "collector redis_state failed: TimeoutError: Timeout reading" in exporter.proc.log()

        server.proc.signal(signal.SIGCONT)
        wait_until(lambda: value(exporter.samples(), "agent_active_agents") == 1, timeout=10,
                   message="key checks back after Redis resumed")
    finally:
        server.proc.signal(signal.SIGCONT)
        server.stop()


@pytest.mark.integration
def test_bad_key_check_exits_2_naming_the_key(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("""
key_checks:
  - key: "queue:a"
    metric: queue_one_length
  - key: "queue:b"
    metric: queue_two_length
    type: tree
""")
    command = Path(sys.executable).with_name("agent-exporter")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "exporter"]
    result = subprocess.run([*argv, "--config", str(bad)], capture_output=True, text=True,
                            timeout=30, cwd=REPO)
    assert result.returncode == 2
    assert "key_checks[1].type" in result.stderr
    assert "tree" in result.stderr


@pytest.mark.parametrize(("entry", "key", "problem"), [
    ({"key": "k"}, "key_checks[0].metric", "required"),
    ({"key": "k", "pattern": "p:{x}", "metric": "m"}, "key_checks[0]", "exactly one"),
    ({"pattern": "queue:all", "metric": "m"}, "key_checks[0].pattern", "capture"),
    ({"pattern": "queue:{bad-name}", "metric": "m"}, "key_checks[0].pattern", "label name"),
    ({"pattern": "q:{a}:{a}", "metric": "m"}, "key_checks[0].pattern", "twice"),
    ({"key": "k", "metric": "m", "type": "set", "fields": {"f": "g"}},
     "key_checks[0].fields", "only for hashes"),
    ({"key": "k", "metric": "m", "scale": 0}, "key_checks[0].scale", "non-zero"),
    ({"key": "k", "metric": "m", "max_keys": 5}, "key_checks[0].max_keys", "pattern"),
    ({"pattern": "q:{a}", "metric": "m", "max_keys": 0}, "key_checks[0].max_keys", "greater"),
    ({"key": "k", "metric": "jobs_total"}, "key_checks[0].metric", "_total"),
    ({"key": "k", "metric": "queue-length"}, "key_checks[0].metric", "not a valid metric name"),
    ({"key": "k", "metric": "agent_exporter_x"}, "key_checks[0].metric", "exporter's own"),
    ({"key": "k", "metric": "m", "fields": {"f": {"name": "g", "scale": "x"}}},
     "key_checks[0].fields.f.scale", "number"),
    ({"pattern": "q:{queue}", "metric": "m", "labels": {"queue": "x"}},
     "key_checks[0].labels", "repeat"),
    ({"key": "k", "metric": "m", "colour": "red"}, "key_checks[0].colour", "unknown key"),
    ({"key": "nope", "enabled": False}, "key_checks[0].enabled", "no built-in check"),
])
def test_bad_entries_name_their_key(entry, key, problem):
    with pytest.raises(ConfigError) as raised:
        parse_key_checks([entry], "key_checks", "test.yml")
    assert raised.value.key == key
    assert problem in str(raised.value)


def test_user_checks_add_to_replace_and_switch_off_builtins(tmp_path: Path):
    path = tmp_path / "checks.yml"
    path.write_text("""
key_checks:
  - pattern: "metrics:agent:{agent}:workload"
    metric: agent_workload
    fields: {current_tasks: current_tasks, queued: queued_tasks}
  - key: "metrics:gpu:current"
    enabled: false
  - key: "queue:x"
    metric: queue_x_length
""")
    checks = {c.id: c for c in load(str(path), env={}).key_checks}
    assert "metrics:gpu:current" not in checks
    assert set(checks["metrics:agent:{agent}:workload"].fields) == {"current_tasks", "queued"}
    assert checks["queue:x"].metric == "queue_x_length"
    assert len(checks) == len(DEFAULT_KEY_CHECKS)  # one switched off, one added


def test_values_that_cannot_be_exported_are_skipped_and_counted(redis_server, redis_url,
                                                                tmp_path: Path):
    client = redis_server.client()
    client.set("count:good", "7")
    client.set("count:bad", "seven")
    client.rpush("count:list", "x")
    client.set(f"count:{'x' * 200}", "1")
    client.hset("perf:p", mapping={"okField": 2, "errors_total": 5})
    client.hset("status:s", "state", "y" * 200)
    path = tmp_path / "c.yml"
    path.write_text(f"""
redis_url: "{redis_url}"
key_checks:
  - {{name: counts, pattern: "count:{{name}}", type: string, metric: count_value}}
  - {{name: perf, pattern: "perf:{{p}}", type: hash, metric: perf}}
  - {{name: status, pattern: "status:{{s}}", label_field: state, metric: status_info}}
  - {{name: twin, key: "count:good", metric: count_value, labels: {{name: good}}}}
  - {{name: listed, key: "count:list", type: set, metric: listed}}
""")
    config = load(str(path), env={})
    collector = RedisStateCollector(CollectorSettings(config.redis_url, key_checks=config.key_checks))
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in collector.collect() for s in family.samples}

    assert value(samples, "count_value", name="good") == 7
    assert value(samples, "perf_ok_field", p="p") == 2  # camelCase field → snake_case name
    assert not series(samples, "perf_errors_total")  # a gauge may not end in _total
    assert not series(samples, "status_info")
    skipped = {dict(labels)["check"] + "/" + dict(labels)["reason"]: v
               for labels, v in series(samples, "agent_exporter_key_check_values_skipped").items()}
    assert skipped == {"counts/non_numeric": 1, "counts/bad_label": 1, "perf/bad_name": 1,
                       "status/bad_label": 1, "twin/duplicate": 1, "listed/wrong_type": 1}
