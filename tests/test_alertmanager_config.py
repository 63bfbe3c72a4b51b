"""alertmanager/alertmanager.yml and its templates, checked with the real `amtool`.

The routing test is generated from prometheus/rules/*.alerts.yml: every alert defined there is
routed by amtool and must reach exactly the receivers its severity calls for, so a new alert (or
a new severity) cannot slip past the routing tree unnoticed.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.procs import REPO, require_binary

pytestmark = pytest.mark.integration

CONFIG = REPO / "alertmanager" / "alertmanager.yml"
TEMPLATES = REPO / "alertmanager" / "templates"
RULES = REPO / "prometheus" / "rules"

BRIDGE, SLACK, EMAIL = "redis-bridge", "slack", "email"
# The routing contract (docs/alerting.md): seed 004's levels and the bundle's severities.
RECEIVERS_BY_SEVERITY = {
    "info": [BRIDGE], "low": [BRIDGE], "medium": [BRIDGE],
    "warning": [BRIDGE, SLACK], "high": [BRIDGE, SLACK],
    "critical": [BRIDGE, SLACK, EMAIL],
}
RECEIVERS_BY_ALERTNAME = {"Watchdog": ["heartbeat"]}  # the dead-man's switch


def defined_alerts() -> list[dict[str, str]]:
    """The label set of every alert rule in prometheus/rules/*.alerts.yml (alertname included)."""
    alerts = []
    for path in sorted(RULES.glob("*.alerts.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts.append({"alertname": rule["alert"], **rule.get("labels", {})})
    return alerts


ALERTS = defined_alerts()


def amtool(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("amtool"), *args], capture_output=True, text=True,
                          timeout=30, check=check)


def expected_receivers(labels: dict[str, str]) -> list[str]:
    if labels["alertname"] in RECEIVERS_BY_ALERTNAME:
        return RECEIVERS_BY_ALERTNAME[labels["alertname"]]
    return RECEIVERS_BY_SEVERITY[labels["severity"]]


def routed_to(labels: dict[str, str]) -> list[str]:
    pairs = [f"{name}={value}" for name, value in labels.items()]
    out = amtool("config", "routes", "test", f"--config.file={CONFIG}", *pairs).stdout
    return out.strip().split(",")


def test_check_config_is_clean():
    result = amtool("check-config", str(CONFIG))
    assert "SUCCESS" in result.stdout
    assert "1 templates" in result.stdout
    assert "6 inhibit rules" in result.stdout


def test_the_rules_define_alerts_to_route():
    assert len(ALERTS) >= 10, f"expected the bundle's alert rules in {RULES}"


@pytest.mark.parametrize("labels", ALERTS, ids=[a["alertname"] for a in ALERTS])
def test_every_defined_alert_reaches_the_receivers_of_its_severity(labels):
    assert labels.get("severity") in RECEIVERS_BY_SEVERITY, (
        f"{labels['alertname']}: severity {labels.get('severity')!r} is not one the routing tree "
        f"knows ({', '.join(RECEIVERS_BY_SEVERITY)})")
    assert routed_to(labels) == expected_receivers(labels)


@pytest.mark.parametrize("severity", sorted(RECEIVERS_BY_SEVERITY))
def test_each_severity_level_routes_as_documented(severity):
    """Also the seed-004 levels no shipped rule uses yet (low, medium, high)."""
    labels = {"alertname": "SomeUserAlert", "severity": severity, "category": "training"}
    assert routed_to(labels) == RECEIVERS_BY_SEVERITY[severity]


@pytest.mark.parametrize("labels", [{"alertname": "NoSeverity"},
                                    {"alertname": "Typo", "severity": "critcal"}])
def test_alerts_with_an_unknown_severity_still_reach_people(labels):
    assert routed_to(labels) == [BRIDGE, SLACK]


def _matcher(text: str):
    """A predicate for one `name op "value"` matcher of the config."""
    match = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*', text)
    assert match, f"unparsable matcher {text!r}"
    name, op, value = match.groups()
    if op in ("=~", "!~"):
        regex = re.compile(value)
        return lambda labels: bool(regex.fullmatch(labels.get(name, ""))) == (op == "=~")
    return lambda labels: (labels.get(name, "") == value) == (op == "=")


def test_every_inhibition_rule_names_alerts_that_exist():
    """A renamed rule (or a typo in `requires`) would silently end an inhibition."""
    config = yaml.safe_load(CONFIG.read_text())
    for rule in config["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            matchers = [_matcher(m) for m in rule[side]]
            assert any(all(m(labels) for m in matchers) for labels in ALERTS), (
                f"no alert in {RULES} matches {side} {rule[side]}")


def test_data_stopped_alerts_are_inhibited_by_the_outage_alerts():
    stopped = {a["alertname"] for a in ALERTS if a.get("requires") == "exporter-data"}
    assert {"AgentNotSeen", "TrainingStalled", "TaskThroughputLow"} <= stopped
    config = yaml.safe_load(CONFIG.read_text())
    targets = [rule for rule in config["inhibit_rules"]
               if rule["target_matchers"] == ['requires="exporter-data"']]
    assert len(targets) == 1
    sources = {a["alertname"] for a in ALERTS
               if all(_matcher(m)(a) for m in targets[0]["source_matchers"])}
    assert sources == {"AgentExporterDown", "ExporterRedisDown", "ExporterSourceNotReading"}


def test_a_source_not_reading_mutes_redis_down_on_the_same_exporter():
    """agent_exporter_redis_up is 0 whenever a source does not read (exporter/sources/health.py):
    ExporterRedisDown is then the symptom, ExporterSourceNotReading the alert that says which
    source and why."""
    config = yaml.safe_load(CONFIG.read_text())
    by_name = {a["alertname"]: a for a in ALERTS}
    rules = [rule for rule in config["inhibit_rules"]
             if all(_matcher(m)(by_name["ExporterSourceNotReading"]) for m in rule["source_matchers"])
             and all(_matcher(m)(by_name["ExporterRedisDown"]) for m in rule["target_matchers"])]
    assert [rule["equal"] for rule in rules] == [["job", "instance"]]
    backwards = [rule for rule in config["inhibit_rules"]
                 if all(_matcher(m)(by_name["ExporterRedisDown"]) for m in rule["source_matchers"])
                 and all(_matcher(m)(by_name["ExporterSourceNotReading"])
                         for m in rule["target_matchers"])]
    assert backwards == [], "the cause must never be muted by its symptom"


def scope_labels_of(path: Path) -> set[str]:
    """The labels the alerts of a rule file match on (`on (...)`): the scope of each alert."""
    labels: set[str] = set()
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            for names in re.findall(r"\bon\s*\(([^)]*)\)", rule.get("expr", "")):
                labels |= {n.strip() for n in names.split(",") if n.strip()}
    return labels


def test_llm_alerts_of_different_providers_and_models_are_grouped_and_inhibited_apart():
    scope = scope_labels_of(RULES / "llm.alerts.yml")
    assert {"gen_ai_provider_name", "gen_ai_request_model"} <= scope
    config = yaml.safe_load(CONFIG.read_text())
    assert scope <= set(config["route"]["group_by"])
    twins = [rule for rule in config["inhibit_rules"] if "alertname" in rule["equal"]]
    assert len(twins) == 2  # critical mutes lower, warning/high mutes lower: same alert and scope
    for rule in twins:
        assert rule["equal"] == config["route"]["group_by"], "one scope for grouping and muting"


def test_secrets_come_from_files_that_the_repo_ships_examples_for():
    config = yaml.safe_load(CONFIG.read_text())
    text = CONFIG.read_text()
    assert "api_url:" not in text and "auth_password:" not in text and "credentials:" not in text
    files = []
    for receiver in config["receivers"]:
        files += [c["api_url_file"] for c in receiver.get("slack_configs", [])]
        files += [c["auth_password_file"] for c in receiver.get("email_configs", [])]
        files += [c["http_config"]["authorization"]["credentials_file"]
                  for c in receiver.get("webhook_configs", [])]
    assert len(files) == 3
    for path in files:
        assert path.startswith("/etc/alertmanager/secrets/")
        example = REPO / "alertmanager" / "secrets" / (Path(path).name + ".example")
        assert example.is_file(), f"ship {example.relative_to(REPO)} for {path}"


# -- templates ------------------------------------------------------------------------------------

def notification(n: int, status: str = "firing") -> dict[str, Any]:
    """template.Data for a group of `n` GPU alerts, as Alertmanager hands it to a template."""
    alerts = []
    for i in range(n):
        alerts.append({
            "status": status,
            "labels": {"alertname": "GpuTemperatureCritical", "severity": "critical",
                       "category": "gpu", "gpu": str(i), "instance": "gpu-host:9842"},
            "annotations": {"summary": "A GPU temperature is critical.",
                            "description": f"GPU {i} on gpu-host:9842 is at 9{i} °C (threshold 90 °C).",
                            "runbook_url": "https://example.com/runbooks.md#gputemperaturecritical",
                            "recommendation": "Check cooling system & reduce load."},
            "startsAt": "2026-11-22T10:00:00Z",
            "endsAt": "2026-11-22T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=gpu_temperature_celsius",
            "fingerprint": f"{i:016x}",
        })
    common = {"alertname": "GpuTemperatureCritical", "severity": "critical", "category": "gpu"}
    return {"receiver": "slack", "status": status, "alerts": alerts,
            "groupLabels": {"alertname": "GpuTemperatureCritical"}, "commonLabels": common,
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093"}


def render(name: str, data: dict[str, Any], tmp_path: Path, kind: str = "text") -> str:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return amtool("template", "render", f"--template.glob={TEMPLATES}/*.tmpl",
                  f"--template.data={path}", f"--template.type={kind}",
                  f'--template.text={{{{ template "{name}" . }}}}').stdout


def test_every_template_the_config_uses_is_defined(tmp_path):
    used = set(re.findall(r'template "([\w.]+)"', CONFIG.read_text()))
    assert {"agent.slack.text", "agent.email.html"} <= used
    for name in used:
        assert render(name, notification(1), tmp_path).strip(), f"{name} renders nothing"


def test_slack_message_shows_summary_description_values_and_runbook(tmp_path):
    data = notification(1)
    assert render("agent.slack.title", data, tmp_path) == \
        "[FIRING:1] GpuTemperatureCritical (critical) · gpu"
    text = render("agent.slack.text", data, tmp_path)
    assert "*A GPU temperature is critical.*" in text
    assert "GPU 0 on gpu-host:9842 is at 90 °C (threshold 90 °C)." in text  # the firing value
    assert "_Recommendation:_ Check cooling system & reduce load." in text
    assert "<https://example.com/runbooks.md#gputemperaturecritical|:notebook: Runbook>" in text
    assert "gpu=0 instance=gpu-host:9842" in text
    assert render("agent.slack.color", data, tmp_path) == "danger"
    assert render("agent.slack.color", notification(1, "resolved"), tmp_path) == "good"


def test_slack_lists_a_group_and_caps_a_long_one(tmp_path):
    text = render("agent.slack.text", notification(3), tmp_path)
    assert text.startswith("*3 firing, 0 resolved*")
    assert [f"GPU {i} on" in text for i in range(3)] == [True] * 3
    long = render("agent.slack.text", notification(12), tmp_path)
    assert "GPU 9 on" in long and "GPU 10 on" not in long
    assert "… and more: <http://alertmanager:9093|see Alertmanager>" in long


def test_email_subject_and_bodies(tmp_path):
    data = notification(2)
    assert render("agent.email.subject", data, tmp_path) == \
        "[FIRING:2] GpuTemperatureCritical (critical) · gpu"
    html = render("agent.email.html", data, tmp_path, kind="html")
    assert "<p>2 firing, 0 resolved</p>" in html
    assert '<a href="https://example.com/runbooks.md#gputemperaturecritical">Runbook</a>' in html
    assert "GPU 1 on gpu-host:9842 is at 91 °C" in html
    assert "Check cooling system &amp; reduce load." in html  # escaped, not raw HTML
    text = render("agent.email.text", notification(1, "resolved"), tmp_path)
    assert text.startswith("[RESOLVED] GpuTemperatureCritical (critical) · gpu")
    assert "Runbook: https://example.com/runbooks.md#gputemperaturecritical" in text
