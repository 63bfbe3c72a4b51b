"""The alert bridge (POST /alertmanager) on a real exporter and a real redis-server."""
from __future__ import annotations

import bcrypt
import orjson
import pytest
import requests

from exporter.config import ConfigError, load
from tests.support.alerts import alert, payload
from tests.support.procs import RedisServer, free_port, value
from tests.support.subscriber import Subscriber


def post(url: str, body: bytes, token: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url + "/alertmanager", data=body, headers=headers, timeout=10)


@pytest.fixture()
def subscriber(redis_url: str):
    sub = Subscriber(redis_url)
    yield sub
    sub.close()


def test_alerts_are_published_in_the_seed_shape_logged_and_counted(redis_url, start_exporter,
                                                                     subscriber):
    exporter = start_exporter(redis_url)
    gpu_alert = alert(gpu="0", instance="gpu-host:9842")
    gpu_alert["annotations"].update(value="91", threshold="90")
    response = post(exporter.url, payload(
        gpu_alert,
        alert("LossPlateau", "warning", "training", project="proj-1"),
        alert("ExporterNote", "info", category=None, status="resolved")))
    assert response.status_code == 200, response.text

    received = dict(subscriber.wait_for(3))
    gpu = received["events:alerts:gpu"]
    assert gpu["severity"] == "critical"
    assert gpu["type"] == "GpuTemperatureCritical"
    assert gpu["message"] == "GpuTemperatureCritical on gpu 0"
    assert gpu["description"] == "GPU 0 is at 91 °C."
    assert gpu["recommendation"] == "Check cooling system and reduce load"
    assert gpu["status"] == "firing"
    assert gpu["category"] == "gpu"
    assert gpu["labels"]["gpu"] == "0" and gpu["labels"]["instance"] == "gpu-host:9842"
    assert gpu["startsAt"] == "2026-11-22T10:00:00Z"
    assert gpu["runbook_url"] == "https://example.com/runbooks/gpu"
    assert gpu["fingerprint"] == "f" * 16
    assert gpu["generatorURL"].startswith("http://prometheus:9090/")
    assert "endsAt" not in gpu  # Alertmanager sends Go's zero time for a firing alert
    assert received["events:alerts:training"]["labels"]["project"] == "proj-1"
    system = received["events:alerts:system"]  # no category label: the seed's system channel
    assert system["status"] == "resolved" and system["endsAt"] == "2026-11-22T10:05:00Z"

    samples = exporter.samples()
    assert value(samples, "agent_exporter_alerts_received_total",
                 severity="critical", status="firing") == 1
    assert value(samples, "agent_exporter_alerts_received_total",
                 severity="info", status="resolved") == 1

    log = exporter.proc.log()
    assert ("WARNING exporter.alert_bridge: [CRITICAL ALERT] 2026-11-22T10:00:00Z\n"
            "Metric: GpuTemperatureCritical\n"
            "Current Value: 91\n"
            "Threshold: 90\n"
            "Tags: {'category': 'gpu', 'gpu': '0', 'instance': 'gpu-host:9842'}\n"
            "Message: GpuTemperatureCritical on gpu 0\n"
            "Description: GPU 0 is at 91 °C.\n"
            "Recommendation: Check cooling system and reduce load\n") in log
    assert "WARNING exporter.alert_bridge: [WARNING ALERT] 2026-11-22T10:00:00Z\n" in log
    assert ("INFO exporter.alert_bridge: [INFO ALERT RESOLVED] 2026-11-22T10:05:00Z\n"
            "Metric: ExporterNote\nCurrent Value: N/A\nThreshold: N/A\nTags: {}\n") in log


def seed_typed(alertname: str, seed_type: str, value: str, threshold: str, category: str,
               status: str = "firing", **labels: str) -> dict:
    out = alert(alertname, "critical", category, status, **labels)
    out["annotations"].update(seed_type=seed_type, value=value, threshold=threshold,
                              recommendation=f"{seed_type} advice")
    return out


@pytest.mark.parametrize("config, system_types", [
    (None, {"sla_breach"}),  # the default: seed 000's ALERT_RULES
    ("alert_bridge:\n  system_types: [high_temperature]\n", {"high_temperature"}),
])
def test_firing_alerts_of_the_system_types_also_go_to_the_system_channel(
        redis_url, start_exporter, subscriber, config, system_types):
    exporter = start_exporter(redis_url, config=config)
    response = post(exporter.url, payload(
        seed_typed("TaskSlaComplianceLow", "sla_breach", "0.82", "0.9", "tasks"),
        seed_typed("GpuTemperatureHigh", "high_temperature", "88", "85", "gpu", gpu="1"),
        seed_typed("TrainingLossHigh", "high_training_loss", "6", "5", "training",
                   status="resolved", project="p1")))  # resolved: never on the system channel
    assert response.status_code == 200, response.text
    received = subscriber.wait_for(3 + len(system_types))
    by_channel = {channel: m for channel, m in received if channel != "events:alerts:system"}
    assert by_channel["events:alerts:tasks"]["type"] == "sla_breach"
    assert by_channel["events:alerts:gpu"]["temperature"] == 88
    assert by_channel["events:alerts:training"]["projectId"] == "p1"
    system = [m for channel, m in received if channel == "events:alerts:system"]
    assert {m["rule"] for m in system} == system_types
    assert [m["message"] for m in system] == [f"{t} advice" for t in system_types]
    assert post(exporter.url, payload(alert("Marker"))).status_code == 200
    subscriber.wait_for(4 + len(system_types))
    assert len(subscriber.poll()) == 4 + len(system_types), "nothing else was published"
    assert value(exporter.samples(), "agent_exporter_alerts_received_total",
                 severity="critical", status="firing") == 3  # counted once per alert


@pytest.mark.parametrize("how", ["token_file", "env"])
def test_bearer_token_is_required_when_configured(redis_url, start_exporter, subscriber,
                                                  tmp_path, how):
    if how == "token_file":
        token_file = tmp_path / "bridge_token"
        token_file.write_text("s3cret-token\n")
        exporter = start_exporter(redis_url,
                                  config=f"alert_bridge:\n  token_file: {token_file}\n")
    else:
        exporter = start_exporter(redis_url,
                                  env={"AGENT_EXPORTER_ALERT_BRIDGE_TOKEN": "s3cret-token"})
    body = payload(alert())
    assert post(exporter.url, body).status_code == 401
    assert post(exporter.url, body, token="wrong").status_code == 401
    assert post(exporter.url, body, token="s3cret-token").status_code == 200
    assert len(subscriber.wait_for(1)) == 1
    assert subscriber.poll() == subscriber.received[:1], "rejected requests published nothing"


MALFORMED = [
    (b"{not json", "malformed JSON"),
    (b"[]", "expected a JSON object"),
    (orjson.dumps({"version": "3", "alerts": []}), "unsupported webhook payload version"),
    (orjson.dumps({"version": "4"}), '"alerts" must be a list'),
    (payload(alert(), {**alert(), "labels": {"severity": "critical"}}),
     "alerts[1].labels has no alertname"),
    (payload({**alert(), "status": "pending"}), "alerts[0].status must be"),
    (payload({**alert(), "labels": {"alertname": "X", "n": 1}}), "alerts[0].labels must be"),
    (payload({**alert(), "annotations": []}), "alerts[0].annotations must be"),
    (payload({**alert(), "startsAt": 5}), "alerts[0].startsAt must be a string"),
]


def test_malformed_payloads_get_400_with_the_reason_and_publish_nothing(
        redis_url, start_exporter, subscriber):
    exporter = start_exporter(redis_url)  # one exporter for all cases: start-up dominates
    for body, reason in MALFORMED:
        response = post(exporter.url, body)
        assert (response.status_code, reason in response.text) == (400, True), \
            (reason, response.text)
    # a good payload afterwards is the only thing that arrives: the bad ones sent nothing, not
    # even the valid first alert of a payload whose second alert was bad
    assert post(exporter.url, payload(alert("After"))).status_code == 200
    assert [m["type"] for _, m in subscriber.wait_for(1)] == ["After"]


def test_oversized_body_gets_413(redis_url, start_exporter):
    exporter = start_exporter(redis_url,
                              config="alert_bridge:\n  max_body_bytes: 2000\n")
    small = payload(alert())
    assert post(exporter.url, small).status_code == 200
    big = payload(*[alert(f"A{n}") for n in range(20)])
    assert len(big) > 2000
    assert post(exporter.url, big).status_code == 413


def test_disabled_bridge_answers_404(redis_url, start_exporter):
    exporter = start_exporter(redis_url,
                              config="alert_bridge:\n  enabled: false\n")
    assert post(exporter.url, payload(alert())).status_code == 404


def test_redis_down_gets_503_and_the_retry_is_delivered(tmp_path, start_exporter):
    server = RedisServer(tmp_path / "redis").start()
    try:
        exporter = start_exporter(server.url)
        server.stop()
        body = payload(alert(), alert("Second", "warning", "tasks"))
        response = post(exporter.url, body)
        assert response.status_code == 503
        assert "Redis unavailable" in response.text
        assert value(exporter.samples(), "agent_exporter_alerts_received_total",
                     severity="critical", status="firing") is None

        server.start()  # same port: Alertmanager's retry now gets through
        sub = Subscriber(server.url)
        try:
            assert post(exporter.url, body).status_code == 200
            assert sorted(c for c, _ in sub.wait_for(2)) == ["events:alerts:gpu",
                                                             "events:alerts:tasks"]
        finally:
            sub.close()
    finally:
        server.stop()




def test_empty_token_file_is_refused(tmp_path):
    token = tmp_path / "token"
    token.write_text("\n")
    path = tmp_path / "c.yml"
    path.write_text(f"alert_bridge:\n  token_file: {token}\n")
    with pytest.raises(ConfigError, match=r"alert_bridge\.token_file: .* the file is empty"):
        load(str(path), env={})


def test_on_a_non_loopback_listener_the_bridge_is_off_until_something_authenticates(
        redis_url, start_exporter, subscriber, tmp_path):
    port = free_port()
    exposed = start_exporter(redis_url, "--listen", f"0.0.0.0:{port}", port=port)
    refused = post(exposed.url, payload(alert("Unauthenticated")))
    assert refused.status_code == 404
    assert f"alert bridge off: 0.0.0.0:{port} is not a loopback address" in refused.text
    assert f"WARNING exporter.app: alert bridge off: 0.0.0.0:{port}" in exposed.proc.log()

    hashed = bcrypt.hashpw(b"am-password", bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alertmanager: '{hashed}'\n")
    session = requests.Session()
    session.auth = ("alertmanager", "am-password")
    port = free_port()
    guarded = start_exporter(redis_url, "--listen", f"0.0.0.0:{port}", "--web.config.file",
                             str(web), port=port, session=session)
    assert post(guarded.url, payload(alert("NoCredentials"))).status_code == 401
    assert session.post(guarded.url + "/alertmanager", data=payload(alert("ViaBasicAuth")),
                        timeout=10).status_code == 200
    assert [m["type"] for _, m in subscriber.wait_for(1)] == ["ViaBasicAuth"]
    assert "alert bridge off" not in guarded.proc.log()
