"""An HA pair end to end on loopback: two real Prometheus servers with the HA fragment of
deploy/scaling/ (replica external label, dropped before alerting) send the same alerts to both
members of a two-node Alertmanager cluster running the shipped alertmanager.yml, which deliver
through the real exporter's bridge to Redis. Each alert group must reach Redis exactly once, and
still once after the member that sent is killed.

The test copy of the configs shortens the timers: rules evaluated every second, group_wait 1s,
group_interval 2s, --rules.alert.resend-delay 5s (default 1m: Prometheus drops the alerts it
evaluates before it has discovered the Alertmanagers, at start and after a reload, and sends them
again after this delay), --cluster.peer-timeout 3s (default 15s: how long the second member
waits for the first one's notification before sending itself). The Slack and SMTP secret files are
absent, as on a fresh clone: those receivers stay inert and the bridge still delivers.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.fragments import with_fragment, write
from tests.support.procs import (
    REPO,
    Exporter,
    Proc,
    alertmanager_binary,
    free_port,
    parse_samples,
    require_binary,
    wait_until,
)
from tests.support.subscriber import Subscriber

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "cluster-test-token"
ALERT = "ClusterDrill"
PEER_TIMEOUT_S = 3
SEVERITIES = {"drill-a": "warning", "drill-b": "critical", "drill-c": "info"}
# Receivers per severity in alertmanager.yml: each is one notification pipeline per group.
PIPELINES = {"info": 1, "warning": 2, "critical": 3}


def drill_rules(path: Path, severities: dict[str, str]) -> None:
    """One always-firing alert per agent: one alert group each (group_by has agent)."""
    rules = [{"alert": ALERT, "expr": "vector(1)",
              "labels": {"severity": severity, "category": "system", "agent": agent},
              "annotations": {"summary": f"Drill for {agent}."}}
             for agent, severity in severities.items()]
    path.write_text(yaml.safe_dump({"groups": [{"name": "drill", "interval": "1s",
                                                "rules": rules}]}))


class Member:
    """One Alertmanager of the cluster."""

    def __init__(self, workdir: Path, name: str, config: Path, cluster_port: int,
                 peer_port: int) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = Proc([alertmanager_binary(), f"--config.file={config}",
                          f"--storage.path={workdir / name}",
                          f"--web.listen-address={self.url.removeprefix('http://')}",
                          f"--cluster.listen-address=127.0.0.1:{cluster_port}",
                          f"--cluster.peer=127.0.0.1:{peer_port}",
                          f"--cluster.peer-timeout={PEER_TIMEOUT_S}s", "--log.level=debug"],
                         workdir / f"{name}.log")

    def status(self) -> dict[str, Any]:
        if not self.proc.alive():
            raise AssertionError(f"{self.name} exited:\n{self.proc.log()}")
        return requests.get(self.url + "/api/v2/status", timeout=2).json()["cluster"]

    def metric(self, name: str, **labels: str) -> float:
        samples = parse_samples(requests.get(self.url + "/metrics", timeout=5).text)
        return sum(value for (metric, found), value in samples.items()
                   if metric == name and labels.items() <= dict(found).items())

    def drill_alerts(self) -> list[dict[str, Any]]:
        return requests.get(self.url + "/api/v2/alerts", params={"filter": f'alertname="{ALERT}"'},
                            timeout=5).json()


def alertmanager_config(workdir: Path, bridge_url: str) -> Path:
    """The shipped routing, inhibitions and receivers; endpoints, secrets and timers patched."""
    config = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    secrets = workdir / "secrets"  # holds the bridge token only: Slack and SMTP not provided
    secrets.mkdir()
    (secrets / "bridge_token").write_text(TOKEN + "\n")
    config["templates"] = [str(REPO / "alertmanager" / "templates" / "*.tmpl")]
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    config["route"].update(group_wait="1s", group_interval="2s")
    text = yaml.safe_dump(config).replace("/etc/alertmanager/secrets/", f"{secrets}/")
    return write(yaml.safe_load(text.replace("http://exporter:9842/alertmanager", bridge_url)),
                 workdir / "alertmanager.yml")


def prometheus_config(workdir: Path, rules: Path, members: list[Member]) -> Path:
    config = with_fragment({"global": {"scrape_interval": "15s", "evaluation_interval": "1s"},
                            "rule_files": [str(rules)]}, "prometheus-ha.yml")
    (managers,) = config["alerting"]["alertmanagers"]
    managers["static_configs"] = [{"targets": [m.url.removeprefix("http://") for m in members]}]
    return write(config, workdir / "prometheus.yml")


class Prometheus:
    def __init__(self, workdir: Path, replica: str, config: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = Proc([require_binary("prometheus"), f"--config.file={config}",
                          f"--storage.tsdb.path={workdir / f'tsdb-{replica}'}",
                          f"--web.listen-address={self.url.removeprefix('http://')}",
                          "--web.enable-lifecycle", "--enable-feature=expand-external-labels",
                          "--rules.alert.resend-delay=5s"],
                         workdir / f"prometheus-{replica}.log",
                         env={"PROMETHEUS_REPLICA": replica, "PATH": "/usr/bin:/bin"})

    def external_labels(self) -> dict[str, str]:
        config = requests.get(self.url + "/api/v1/status/config", timeout=5).json()
        return yaml.safe_load(config["data"]["yaml"])["global"]["external_labels"]

    def reload(self) -> None:
        requests.post(self.url + "/-/reload", timeout=10).raise_for_status()


@pytest.fixture()
def exporter(tmp_path: Path, redis_url: str) -> Iterator[Exporter]:
    (tmp_path / "token").write_text(TOKEN + "\n")
    started = Exporter(tmp_path, redis_url,
                       config=f"alert_bridge:\n  token_file: {tmp_path / 'token'}\n").wait_ready()
    yield started
    started.stop()


def test_an_alertmanager_cluster_delivers_each_group_once_and_survives_a_member(
        tmp_path: Path, redis_url: str, exporter: Exporter) -> None:
    subscriber = Subscriber(redis_url)
    config = alertmanager_config(tmp_path, exporter.url + "/alertmanager")
    ports = [free_port(), free_port()]
    started = time.monotonic()
    members = [Member(tmp_path, "am-a", config, ports[0], ports[1]),
               Member(tmp_path, "am-b", config, ports[1], ports[0])]
    rules = tmp_path / "drill.rules.yml"
    drill_rules(rules, SEVERITIES)
    servers: list[Prometheus] = []
    try:
        def settled() -> bool:
            return all(m.status()["status"] == "ready" and len(m.status()["peers"]) == 2
                       for m in members)

        wait_until(settled, timeout=90, interval=0.2, message="the cluster to settle")
        settle_s = time.monotonic() - started

        prom_config = prometheus_config(tmp_path, rules, members)
        servers = [Prometheus(tmp_path, replica, prom_config) for replica in ("a", "b")]
        fired = time.monotonic()

        def delivered() -> Counter[str]:
            messages = [m for _, m in subscriber.poll() if m["type"] == ALERT]
            assert all(m["status"] == "firing" for m in messages), messages  # none expired
            return Counter(m["labels"]["agent"] for m in messages)

        def both_decided(groups: dict[str, str], since: dict[str, float]) -> bool:
            """Each member ran its dedup check twice over for every group's pipelines: the
            second member decides after waiting for the first one's notification log."""
            needed = 2 * sum(PIPELINES[severity] for severity in groups.values())
            return all(m.metric("alertmanager_nflog_queries_total") - since[m.name] >= needed
                       for m in members if m.proc.alive())

        wait_until(lambda: set(delivered()) == set(SEVERITIES), timeout=60, interval=0.2,
                   message="every group on Redis")
        first_delivery_s = time.monotonic() - fired
        wait_until(lambda: both_decided(SEVERITIES, dict.fromkeys(("am-a", "am-b"), 0.0)),
                   timeout=60, interval=0.5, message="both members to check every group")
        assert delivered() == Counter(dict.fromkeys(SEVERITIES, 1))

        # Both servers sent each alert to both members, with distinct replica labels that the
        # members never saw: one alert per label set.
        assert [p.external_labels()["replica"] for p in servers] == ["a", "b"]
        for member in members:
            alerts = member.drill_alerts()
            assert sorted(a["labels"]["agent"] for a in alerts) == sorted(SEVERITIES)
            assert not any("replica" in a["labels"] for a in alerts)
            assert member.metric("alertmanager_alerts_received_total") >= 2 * len(SEVERITIES)
        # The Slack and SMTP receivers were tried and failed for want of their secret files.
        logs = "".join(m.proc.log() for m in members)
        assert "slack_api_url: no such file or directory" in logs

        sent = {m.name: m.metric("alertmanager_notifications_total", integration="webhook")
                - m.metric("alertmanager_notifications_failed_total", integration="webhook")
                for m in members}
        assert sorted(sent.values()) == [0, len(SEVERITIES)], sent  # one member sent them all
        sender, survivor = sorted(members, key=lambda m: -sent[m.name])
        sender.proc.kill()
        killed = time.monotonic()

        later = {**SEVERITIES, "drill-d": "warning"}
        drill_rules(rules, later)
        for server in servers:
            server.reload()
        reloaded = time.monotonic()
        baseline = {survivor.name: survivor.metric("alertmanager_nflog_queries_total")}
        wait_until(lambda: "drill-d" in delivered(), timeout=60, interval=0.2,
                   message="the new group delivered by the surviving member")
        failover_delivery_s = time.monotonic() - reloaded
        wait_until(lambda: both_decided(later, baseline), timeout=60, interval=0.5,
                   message="the survivor to check every group again")
        assert delivered() == Counter(dict.fromkeys(later, 1))
        published = parse_samples(exporter.scrape())
        assert sum(v for (name, _), v in published.items()
                   if name == "agent_exporter_alerts_received_total") == len(later)
        wait_until(lambda: len(survivor.status()["peers"]) == 1, timeout=60, interval=0.2,
                   message="the survivor to see its peer gone")
        peer_gone_s = time.monotonic() - killed
        print(f"\ncluster settled in {settle_s:.1f} s; first deliveries {first_delivery_s:.1f} s "
              f"after Prometheus started; after the kill the new group arrived "
              f"{failover_delivery_s:.1f} s after the rule reload; peer marked gone after "
              f"{peer_gone_s:.1f} s; deliveries {dict(delivered())}; sent per member {sent}")
    finally:
        for server in servers:
            server.proc.stop()
        for member in members:
            member.proc.stop()
        subscriber.close()
