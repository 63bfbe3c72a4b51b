"""The shipped alertmanager.yml in a real Alertmanager, delivering to a real exporter's bridge.

The config is alertmanager/alertmanager.yml with only the endpoints (bridge URL and token, Slack
URL, SMTP host, template path) and the group timers patched: routing and inhibition are the
shipped ones. Slack goes to a test-side HTTP sink; SMTP to a closed port (its retries are noise).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.procs import (
    REPO,
    Exporter,
    Proc,
    RedisServer,
    alertmanager_binary,
    free_port,
    value,
    wait_until,
)
from tests.support.subscriber import Subscriber

pytestmark = pytest.mark.integration

TOKEN = "live-test-token"


class SlackSink(ThreadingHTTPServer):
    """Stands in for Slack's incoming webhook: keeps every JSON body posted to it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N805
                length = int(handler.headers.get("Content-Length", "0"))
                self.bodies.append(json.loads(handler.rfile.read(length)))
                handler.send_response(200)
                handler.send_header("Content-Length", "2")
                handler.end_headers()
                handler.wfile.write(b"ok")

            def log_message(handler, *args: Any) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/slack"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def live_config(workdir: Path, bridge_url: str, slack_url: str) -> Path:
    """alertmanager.yml with endpoints and timers patched; routes and inhibitions untouched."""
    config = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    (workdir / "token").write_text(TOKEN + "\n")
    (workdir / "slack_url").write_text(slack_url + "\n")
    config["templates"] = [str(REPO / "alertmanager" / "templates" / "*.tmpl")]
    config["global"]["smtp_smarthost"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = bridge_url
            hook["http_config"]["authorization"]["credentials_file"] = str(workdir / "token")
        for slack in receiver.get("slack_configs", []):
            slack["api_url_file"] = str(workdir / "slack_url")
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Stack:
    """Redis, the exporter (bridge token required) and Alertmanager, on loopback ports."""

    def __init__(self, workdir: Path) -> None:
        binary = alertmanager_binary()
        self.redis = RedisServer(workdir / "redis").start()
        (workdir / "token_for_exporter").write_text(TOKEN)
        self.exporter = Exporter(workdir, self.redis.url, config=(
            f"alert_bridge:\n  token_file: {workdir / 'token_for_exporter'}\n")).wait_ready()
        self.slack = SlackSink()
        config = live_config(workdir, self.exporter.url + "/alertmanager", self.slack.url)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.alertmanager = Proc(
            [binary, f"--config.file={config}", f"--storage.path={workdir / 'am-data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}",
             "--cluster.listen-address=", "--log.level=debug"],
            workdir / "alertmanager.log")
        wait_until(lambda: self._alive() and requests.get(self.url + "/-/ready", timeout=1).ok,
                   timeout=20, message="alertmanager /-/ready")

    def _alive(self) -> bool:
        if not self.alertmanager.alive():
            raise AssertionError(f"alertmanager exited:\n{self.alertmanager.log()}")
        return True

    def post(self, *alerts: dict[str, Any]) -> None:
        requests.post(self.url + "/api/v2/alerts", json=list(alerts), timeout=5).raise_for_status()

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        response = requests.get(self.url + "/api/v2/alerts",
                                params={"filter": f'alertname="{alertname}"'}, timeout=5)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.alertmanager.stop()
        self.slack.shutdown()
        self.exporter.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("alertmanager-live"))
    yield stack
    stack.stop()


@pytest.fixture()
def subscriber(stack: Stack) -> Iterator[Subscriber]:
    sub = Subscriber(stack.redis.url)
    yield sub
    sub.close()


def am_alert(alertname: str, severity: str, category: str = "gpu", ends: str | None = None,
             **labels: str) -> dict[str, Any]:
    alert = {"labels": {"alertname": alertname, "severity": severity, "category": category,
                        "job": "agent-exporter", **labels},
             "annotations": {"summary": f"{alertname} summary",
                             "description": f"{alertname} is at 91 (threshold 90).",
                             "recommendation": "Check cooling system and reduce load.",
                             "runbook_url": f"https://example.com/runbooks.md#{alertname.lower()}"},
             "generatorURL": "http://prometheus:9090/graph"}
    if ends is not None:
        alert["endsAt"] = ends
    return alert


def messages_of(sub: Subscriber, alertname: str) -> list[tuple[str, dict[str, Any]]]:
    return [(channel, m) for channel, m in sub.poll() if m["type"] == alertname]


def state(stack: Stack, alertname: str, severity: str) -> dict[str, Any]:
    (alert,) = [a for a in stack.alerts(alertname) if a["labels"]["severity"] == severity]
    return alert


def test_critical_suppresses_its_warning_twin(stack, subscriber):
    stack.post(am_alert("TwinOverheat", "warning", gpu="0"),
               am_alert("TwinOverheat", "critical", gpu="0"),
               am_alert("TwinOverheat", "warning", gpu="1"))  # another scope: not muted
    critical = wait_until(lambda: state(stack, "TwinOverheat", "critical"),
                          message="the critical twin in Alertmanager")
    muted = wait_until(lambda: next(
        (a for a in stack.alerts("TwinOverheat")
         if a["labels"]["gpu"] == "0" and a["status"]["state"] == "suppressed"), None),
        message="the warning twin suppressed")
    assert muted["labels"]["severity"] == "warning"
    assert muted["status"]["inhibitedBy"] == [critical["fingerprint"]]
    other = next(a for a in stack.alerts("TwinOverheat") if a["labels"]["gpu"] == "1")
    assert other["status"]["state"] == "active"

    # the bridge is told about the critical and the unmuted warning, never the muted twin
    wait_until(lambda: len(messages_of(subscriber, "TwinOverheat")) >= 2,
               message="the notifications of both groups on Redis")
    delivered = {(m["labels"]["gpu"], m["severity"]) for _, m in messages_of(subscriber,
                                                                              "TwinOverheat")}
    assert delivered == {("0", "critical"), ("1", "warning")}


@pytest.mark.parametrize("source, target, job, muted", [
    ("GpuTemperatureCritical", "GpuTemperatureHigh", "agent-exporter", True),
    ("AgentExporterDown", "AgentNotSeen", "agent-exporter", True),
    ("ExporterRedisDown", "TrainingStalled", "agent-exporter", True),
    ("ExporterRedisDown", "TrainingStalled", "other-exporter", False),  # equal: [job]
    # redis_up is 0 whenever a source does not read: the source alert is the news
    ("ExporterSourceNotReading", "ExporterRedisDown", "agent-exporter", True),
    ("ExporterSourceNotReading", "ExporterRedisDown", "other-exporter", False),
])
def test_named_inhibitions(stack, source, target, job, muted):
    severity = {"GpuTemperatureHigh": "warning", "AgentNotSeen": "warning",
                "TrainingStalled": "warning", "ExporterRedisDown": "critical"}[target]
    labels = {"requires": "exporter-data"} if target in ("AgentNotSeen", "TrainingStalled") else {}
    stack.post(am_alert(source, "critical", gpu="3", instance="h:9842"),
               am_alert(target, severity, gpu="3", instance="h:9842", job=job, **labels))
    src = wait_until(lambda: state(stack, source, "critical"), message=source)
    expected = ("suppressed", [src["fingerprint"]]) if muted else ("active", [])

    def status() -> tuple[str, list[str]]:
        target_alert = next(a for a in stack.alerts(target) if a["labels"]["job"] == job)
        return target_alert["status"]["state"], target_alert["status"]["inhibitedBy"]

    wait_until(lambda: status() == expected, message=f"{target} {expected[0]}")


def test_a_notification_reaches_redis_and_slack_and_then_resolves(stack, subscriber):
    stack.post(am_alert("LiveGpuHot", "critical", gpu="7", instance="h:9842"))
    channel, message = wait_until(lambda: messages_of(subscriber, "LiveGpuHot"),
                                  message="the firing alert on Redis")[0]
    assert channel == "events:alerts:gpu"
    assert message["severity"] == "critical" and message["status"] == "firing"
    assert message["message"] == "LiveGpuHot summary"
    assert message["recommendation"] == "Check cooling system and reduce load."
    assert message["labels"]["gpu"] == "7"
    assert message["startsAt"].startswith(str(datetime.now(UTC).year))

    slack = wait_until(lambda: [b for b in stack.slack.bodies
                                if "LiveGpuHot" in json.dumps(b)], message="the Slack message")[0]
    attachment = slack["attachments"][0]
    assert attachment["title"] == "[FIRING:1] LiveGpuHot (critical) · gpu"
    assert "LiveGpuHot is at 91 (threshold 90)." in attachment["text"]
    assert "https://example.com/runbooks.md#livegpuhot" in attachment["text"]

    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    stack.post(am_alert("LiveGpuHot", "critical", gpu="7", instance="h:9842", ends=past))
    channel, resolved = wait_until(
        lambda: [(c, m) for c, m in messages_of(subscriber, "LiveGpuHot")
                 if m["status"] == "resolved"], message="the resolved alert on Redis")[0]
    assert channel == "events:alerts:gpu"
    assert resolved["endsAt"] and resolved["severity"] == "critical"
    assert "WARNING exporter.alert_bridge: [CRITICAL ALERT]" in stack.exporter.proc.log()
    assert "[CRITICAL ALERT RESOLVED]" in stack.exporter.proc.log()


def test_a_seed_typed_alert_reaches_its_channel_and_the_system_channel_with_its_numbers(
        stack, subscriber):
    firing = am_alert("TaskSlaComplianceLow", "critical", category="tasks", agent="coder")
    firing["annotations"].update(seed_type="sla_breach", value="0.8125", threshold="0.9",
                                 recommendation="SLA compliance below 90%.")
    stack.post(firing)
    def on_both() -> dict[str, dict[str, Any]] | None:
        found = {c: m for c, m in subscriber.poll() if m.get("alertname") == "TaskSlaComplianceLow"}
        return found if len(found) == 2 else None

    received = wait_until(on_both, message="the alert on both channels")
    tasks, system = received["events:alerts:tasks"], received["events:alerts:system"]
    assert (tasks["type"], tasks["value"], tasks["threshold"]) == ("sla_breach", 0.8125, 0.9)
    assert tasks["agentId"] == "coder" and tasks["status"] == "firing"
    assert {k: system[k] for k in ("rule", "severity", "message", "value", "threshold")} == {
        "rule": "sla_breach", "severity": "critical", "message": "SLA compliance below 90%.",
        "value": 0.8125, "threshold": 0.9}
    assert system["timestamp"].startswith(str(datetime.now(UTC).year))

    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    stack.post({**firing, "endsAt": past})
    wait_until(lambda: [m for c, m in subscriber.poll() if c == "events:alerts:tasks"
                        and m["alertname"] == "TaskSlaComplianceLow" and m["status"] == "resolved"],
               message="the resolved alert on its channel")
    assert [c for c, m in subscriber.poll() if m.get("alertname") == "TaskSlaComplianceLow"
            ].count("events:alerts:system") == 1, "the seed never publishes a resolution there"


def test_llm_alerts_of_different_models_are_notified_apart(stack):
    stack.post(*[am_alert("LlmLatencyHigh", "warning", category="llm",
                          gen_ai_provider_name="openai", gen_ai_request_model=model)
                 for model in ("gpt-4o", "gpt-4o-mini")])
    def titles() -> list[str] | None:
        found = sorted(b["attachments"][0]["title"] for b in stack.slack.bodies
                       if "LlmLatencyHigh" in json.dumps(b))
        return found if len(found) >= 2 else None

    assert wait_until(titles, message="two Slack notifications") == \
        ["[FIRING:1] LlmLatencyHigh (warning) · llm"] * 2


def test_an_alert_sent_while_redis_is_down_arrives_once_it_is_back(stack):
    def received() -> float:
        return value(stack.exporter.samples(), "agent_exporter_alerts_received_total",
                     severity="high", status="firing") or 0.0

    assert received() == 0
    stack.redis.stop()
    try:
        stack.post(am_alert("LiveRedisOutage", "high", category="system"))
        wait_until(lambda: "Redis unavailable" in stack.exporter.proc.log(), timeout=15,
                   message="the bridge answering 503 to Alertmanager")
        assert received() == 0
    finally:
        stack.redis.start()  # same port and URL
    wait_until(lambda: received() == 1, timeout=20, message="Alertmanager's retry delivered")
    publishes = stack.redis.client().info("commandstats").get("cmdstat_publish", {})
    assert publishes.get("calls", 0) >= 1, "published on the restarted Redis"
    assert "unexpected status code 503" in stack.alertmanager.log()  # it saw the 503 and retried
