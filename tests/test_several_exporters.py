"""Several exporters, one swarm. Over streams, three exporter processes in one consumer group
share the events, one of them is killed with SIGKILL midway (restarted with its consumer name,
then another one for good), and a real Prometheus scraping the three sums every counter the
way the recording rules do, `sum without (instance)`: the sums equal what was published.

Over pub/sub every subscriber receives every event, so sharing is impossible: the exporter
warns when it finds other subscribers on its channels.
"""
from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from exporter import contract
from exporter.publisher import Publisher
from tests.support.procs import NO_COLLECTORS, Exporter, wait_until
from tests.support.prometheus import Prometheus

pytestmark = pytest.mark.integration

CONFIG = """
source: streams
streams:
  checkpoint_seconds: 0.2
  claim_idle_seconds: 10
  block_ms: 100
"""
FAMILIES = ("agent_tasks_total", "workflow_step_duration_seconds_count", "rag_queries_total",
            "agent_errors_total", "agent_exporter_events_total")
Sums = dict[str, Counter]


def event(i: int) -> tuple[str, dict[str, Any], str, dict[str, str]]:
    """The i-th event of a mixed swarm: (stream, event, counter it feeds, its labels)."""
    if i % 4 == 0:
        agent, status = f"agent-{i % 7}", "done" if i % 5 else "failed"
        return (contract.TASKS, {"agent": agent, "status": status, "duration_seconds": i % 900},
                "agent_tasks_total", {"agent": agent, "status": status})
    if i % 4 == 1:
        workflow, step = f"wf-{i % 3}", f"s{i % 4}"
        return (contract.WORKFLOWS, {"workflowId": workflow, "stepId": step,
                                     "duration_seconds": i % 700},
                "workflow_step_duration_seconds_count", {"workflow": workflow, "step": step})
    if i % 4 == 2:
        source, success = f"kb-{i % 2}", i % 6 != 2
        return (contract.RAG, {"duration_seconds": 0.2, "success": success, "source": source},
                "rag_queries_total", {"source": source, "outcome": "success" if success
                                      else "failure"})
    kind, component = f"kind{i % 2}", f"c{i % 3}"
    return (contract.ERRORS + kind, {"component": component, "error": "x"},
            "agent_errors_total", {"kind": kind, "component": component})


class Swarm:
    """Publishes events 0, 1, 2 … over streams, keeping what each counter must sum to."""

    def __init__(self, redis_url: str) -> None:
        self.publisher = Publisher(redis_url, transport="streams")
        self.sent = 0
        self.expected: Sums = {family: Counter() for family in FAMILIES}

    def publish(self, count: int, pause: float = 0.0) -> None:
        """`count` events, 400 at a time with `pause` seconds between (so a kill lands midway)."""
        for start in range(self.sent, self.sent + count, 400):
            by_stream: dict[str, list[dict]] = {}
            for i in range(start, min(start + 400, self.sent + count)):
                stream, payload, family, labels = event(i)
                by_stream.setdefault(stream, []).append(payload)
                self.expected[family][frozenset(labels.items())] += 1
                route = "events:errors:*" if stream.startswith(contract.ERRORS) else stream
                source = {"source": stream, "type": contract.DEFAULT_CHANNELS[route]}
                self.expected["agent_exporter_events_total"][frozenset(source.items())] += 1
            for stream, events in by_stream.items():
                self.publisher.publish_many(stream, events)
            threading.Event().wait(pause)
        self.sent += count

    def in_background(self, count: int) -> threading.Thread:
        thread = threading.Thread(target=self.publish, args=(count, 0.05))
        thread.start()
        return thread


def sums(prometheus: Prometheus) -> Sums:
    """Each family summed across the instances as the recording rules sum: without instance."""
    return {family: Counter({frozenset((k, v) for k, v in labels if k != "job"): value
                             for labels, value in prometheus.query(
                                 f"sum without (instance) ({family})").items()})
            for family in FAMILIES}


def checkpointed(client: redis.Redis, consumer: str) -> Counter:
    """agent_exporter_events_total in a consumer's last checkpoint, by (source, type)."""
    blob = orjson.loads(client.get(f"agent-exporter:checkpoint:agent-exporter:{consumer}"))
    return Counter({frozenset(zip(("source", "type"), row[0])): row[1]
                    for row in blob["agent_exporter_events_total"]["rows"]})


def test_three_exporters_share_a_stream_group_and_their_sums_are_exact(
        redis_url: str, tmp_path: Path) -> None:
    swarm = Swarm(redis_url)
    swarm.publish(8)  # every stream exists (the error streams are found by SCAN) before start
    exporters: dict[str, Exporter] = {}
    for consumer in ("e1", "e2", "e3"):
        exporters[consumer] = Exporter(tmp_path, redis_url, NO_COLLECTORS, config=CONFIG,
                                       env={"AGENT_EXPORTER_CONSUMER": consumer}).wait_ready()
    prometheus = Prometheus(tmp_path / "prometheus",
                            [e.url.removeprefix("http://") for e in exporters.values()])
    try:
        wait_until(lambda: len(prometheus.query("up == 1")) == 3, timeout=30,
                   message="Prometheus scrapes the three")

        # e1 is killed midway and restarted with its consumer name, on its port
        publishing = swarm.in_background(24_000)
        wait_until(lambda: sum(sums(prometheus)["agent_exporter_events_total"].values()) > 6000,
                   timeout=60, message="a quarter counted")
        exporters["e1"].proc.kill()
        exporters["e1"] = Exporter(tmp_path, redis_url, NO_COLLECTORS, config=CONFIG,
                                   env={"AGENT_EXPORTER_CONSUMER": "e1"},
                                   port=exporters["e1"].port).wait_ready()
        publishing.join()
        wait_until(lambda: sums(prometheus) == swarm.expected, timeout=60, interval=0.5,
                   message="the sums equal what was published")
        shares = {name: sum(e.samples().get(("agent_exporter_events_total", labels), 0)
                            for labels in swarm.expected["agent_exporter_events_total"])
                  for name, e in exporters.items()}
        assert all(share > 0 for share in shares.values()), shares

        # e2 is killed midway and stays dead: the others claim its pending entries; what it had
        # checkpointed leaves the sum with it
        before = swarm.sent
        publishing = swarm.in_background(12_000)
        wait_until(lambda: sum(sums(prometheus)["agent_exporter_events_total"].values())
                   > before + 3000, timeout=60, message="a quarter of the rest counted")
        exporters["e2"].proc.kill()
        publishing.join()
        client = redis.Redis.from_url(redis_url)
        left = checkpointed(client, "e2")

        def survivors_plus_left() -> Counter:
            return sums(prometheus)["agent_exporter_events_total"] + left

        wait_until(lambda: survivors_plus_left() == swarm.expected["agent_exporter_events_total"],
                   timeout=60, interval=0.5, message="survivors + the dead one's checkpoint")
        assert client.xpending(contract.TASKS, "agent-exporter")["pending"] == 0

        # no counter ever went back (Prometheus would read a reset), and every rule evaluates
        resets = prometheus.query(" or ".join(f"resets({f}[10m]) > 0" for f in FAMILIES))
        assert not resets, resets
        groups = prometheus.api("rules")["data"]["groups"]
        failing = [(r["name"], r["lastError"]) for g in groups for r in g["rules"]
                   if r["health"] == "err"]
        assert not failing
    finally:
        prometheus.stop()
        for exporter in exporters.values():
            exporter.stop()


def test_an_exporter_warns_when_others_subscribe_to_its_pub_sub_channels(
        redis_url: str, start_exporter) -> None:
    first = start_exporter(redis_url, *NO_COLLECTORS, "--log-level", "debug")
    wait_until(lambda: "no other subscriber on the pub/sub channels" in first.proc.log(),
               timeout=20, message="the first exporter finds itself alone")
    second = start_exporter(redis_url, *NO_COLLECTORS)
    wait_until(lambda: "other clients subscribe to" in second.proc.log(), timeout=20,
               message="the second exporter's warning")
    assert f"{contract.TASKS} (1)" in second.proc.log()
    assert "source: streams in one consumer group" in second.proc.log()
    assert "other clients subscribe to" not in first.proc.log()
