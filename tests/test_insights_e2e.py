"""Seed 000's insights through real processes: events → Redis → exporter → Prometheus (the repo's
rules) → Alertmanager (the repo's routing) → the alert bridge → Redis `events:insights:*`.

WorkflowStepSlow waits 5 minutes (`for: 5m`, unit-tested by promtool); here its copy of the rule
file fires at once. Everything else is the shipped configuration with 1-second intervals.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import requests
import yaml

from tests.support.procs import (
    alertmanager_binary,
    require_binary,
    wait_until,
)
from tests.support.subscriber import Subscriber
from tests.test_stack_e2e import start_alerting, targets_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def without_for(rule_file: str, alertname: str, workdir: Path) -> str:
    """A copy of `rule_file` whose `alertname` fires at once."""
    doc = yaml.safe_load(Path(rule_file).read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alertname:
                rule.pop("for", None)
    path = workdir / Path(rule_file).name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def scraped(prometheus: str, expr: str) -> bool:
    response = requests.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=5)
    return bool(response.json()["data"]["result"])


def publish(client: redis.Redis, channel: str, *events: dict[str, Any]) -> None:
    for event in events:
        assert client.publish(channel, orjson.dumps(event)) >= 1, f"nobody listens on {channel}"


def test_insights_reach_redis_in_the_seeds_shape(tmp_path: Path, redis_url: str,
                                                 start_exporter) -> None:
    require_binary("prometheus")
    alertmanager_binary()
    insights = Subscriber(redis_url, "events:insights:*")
    client = redis.Redis.from_url(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()

    def workflow_rule_without_for(patterns: list[str]) -> list[str]:
        files = sorted(str(path) for pattern in patterns
                       for path in Path("/").glob(pattern.lstrip("/")))
        out = [without_for(path, "WorkflowStepSlow", rules)
               if path.endswith("workflows.alerts.yml") else path for path in files]
        assert len(files) > 10 and str(rules / "workflows.alerts.yml") in out
        return out

    exporter, am_url, prom_url, procs = start_alerting(tmp_path, redis_url, start_exporter,
                                                       workflow_rule_without_for)
    try:
        wait_until(lambda: targets_up(prom_url), timeout=60, message="every scrape target up")
        wait_until(lambda: requests.get(am_url + "/-/ready", timeout=1).ok, timeout=20,
                   message="alertmanager ready")

        # A hot GPU (seed pattern 3's hash), one task done and one failed, a first step run:
        # each counter exists before the events that must count.
        client.hset("metrics:gpu:current", mapping={"temperature_celsius": 91})
        publish(client, "events:tasks:updates",
                {"taskId": "t1", "agent": "ml-engineer", "status": "done", "duration_seconds": 30},
                {"taskId": "t2", "agent": "data-engineer", "status": "failed",
                 "duration_seconds": 5})
        publish(client, "events:workflows:steps",
                {"workflowId": "etl", "stepId": "load", "duration_seconds": 700})
        wait_until(lambda: scraped(prom_url, "workflow_step_duration_seconds_count")
                   and scraped(prom_url, "agent_tasks_total")
                   and scraped(prom_url, "gpu_reported_temperature_celsius"),
                   timeout=30, interval=0.5, message="the first events scraped")

        # Then: more done tasks, 12 slow runs of the step, and a critical error.
        publish(client, "events:tasks:updates",
                *[{"taskId": f"t{n}", "agent": "ml-engineer", "status": "done",
                   "duration_seconds": 30} for n in range(3, 6)],
                {"taskId": "t6", "agent": "data-engineer", "status": "failed",
                 "duration_seconds": 5})
        publish(client, "events:workflows:steps",
                *[{"workflowId": "etl", "stepId": "load", "duration_seconds": 700}] * 12)
        publish(client, "events:errors:critical",
                {"errorId": "err-42", "component": "trainer", "error": "CUDA error"})

        def kinds() -> dict[str, tuple[str, dict[str, Any]]]:
            return {message["type"]: (channel, message) for channel, message in insights.poll()}

        try:
            found = wait_until(lambda: len(kinds()) == 3 and kinds(), timeout=120, interval=0.5,
                               message="the three kinds of insight on events:insights:*")
        except AssertionError as exc:
            alerts = requests.get(prom_url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            raise AssertionError(f"{exc}; received {sorted(kinds())}; Prometheus alerts "
                                 f"{[(a['labels']['alertname'], a['state']) for a in alerts]}; "
                                 f"exporter log: {exporter.proc.log()[-2000:]}") from None

        channel, ranking = found["performance_rankings_updated"]
        assert channel == "events:insights:agent_performance"
        assert ranking["timestamp"]
        rows = ranking["rankings"]
        assert [r["agentType"] for r in rows] == ["ml-engineer", "data-engineer"]
        best = rows[0]
        for row in rows:  # the seed's score from the fields published with it
            assert row["score"] == pytest.approx(
                row["tasksCompleted"] * 10 - row["avgDuration"] / 10 - row["errorRate"] * 100,
                abs=1e-6)
        assert best["avgDuration"] == pytest.approx(30)
        assert rows[1]["errorRate"] > 0 and rows[1]["tasksCompleted"] == 0
        stored = orjson.loads(client.hget("metrics:agents:rankings", "performance_ranked"))
        assert [r["agentType"] for r in stored] == ["ml-engineer", "data-engineer"]

        channel, slow = found["slow_step_detected"]
        assert channel == "events:insights:workflows"
        assert (slow["workflowId"], slow["stepId"]) == ("etl", "load")
        assert slow["avgDuration"] == pytest.approx(700)
        assert slow["recommendation"]

        channel, correlation = found["error_performance_correlation"]
        assert channel == "events:insights:correlations"
        assert correlation["errorId"] == "err-42"
        assert correlation["possibleCause"] == "high_gpu_temperature"
        assert correlation["avgTemp"] > 85
        assert correlation["recommendation"]

        # A critical error while the alert keeps firing is reported too (its route repeats the
        # notification every minute or two), and each error only once.
        publish(client, "events:errors:critical",
                {"errorId": "err-43", "component": "trainer", "error": "CUDA error"})

        def correlated() -> list[str]:
            return [m["errorId"] for _, m in insights.poll()
                    if m["type"] == "error_performance_correlation"]

        wait_until(lambda: "err-43" in correlated(), timeout=150, interval=0.5,
                   message="the second critical error correlated")
        assert correlated() == ["err-42", "err-43"]
    finally:
        for proc in reversed(procs):
            proc.stop()
        insights.close()
        client.close()
