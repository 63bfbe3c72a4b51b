"""Alerts in the shapes the agents receive them (exporter.alert_messages), against seed 000's
message shapes and the shipped rules' annotations."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.alert_messages import (
    SEED_TYPES,
    SYSTEM_TYPES,
    console_text,
    number,
    seed_message,
    system_message,
)
from exporter.config import ConfigError, load
from tests.support.alerts import alert
from tests.support.procs import REPO


def seed_alert(alertname: str, seed_type: str | None, value: str | None, threshold: str | None,
               severity: str = "warning", category: str = "training", status: str = "firing",
               **labels: str) -> dict[str, Any]:
    out = alert(alertname, severity, category, status, **labels)
    notes = out["annotations"]
    for name, text in (("seed_type", seed_type), ("value", value), ("threshold", threshold)):
        if text is not None:
            notes[name] = text
    return out


@pytest.mark.parametrize("text, parsed", [
    ("91", 91), ("0.95", 0.95), ("1048576000", 1048576000), ("-2.5e-3", -0.0025),
    ("NaN", "NaN"), ("+Inf", "+Inf"), ("n/a", "n/a"), (None, None),
])
def test_annotations_become_numbers_when_they_are_finite_numbers(text, parsed):
    assert number(text) == parsed
    assert type(number(text)) is type(parsed)


def test_a_seed_typed_alert_carries_the_seed_type_its_name_value_threshold_and_scope():
    message = seed_message(seed_alert("TrainingLossPlateau", "loss_plateau", "0.004", "0.01",
                                      project="proj-1", job="agent-exporter"))
    assert message["type"] == "loss_plateau"
    assert message["alertname"] == "TrainingLossPlateau"
    assert (message["value"], message["threshold"]) == (0.004, 0.01)
    assert message["projectId"] == "proj-1"
    assert message["avgLoss"] == 0.004  # the seed's loss_plateau field
    assert message["severity"] == "warning"
    assert message["recommendation"] == "Check cooling system and reduce load"


def test_without_a_seed_type_the_type_is_the_alert_name_and_missing_numbers_are_null():
    message = seed_message(alert("ExporterNote", "info", "system"))
    assert message["type"] == message["alertname"] == "ExporterNote"
    assert message["value"] is None and message["threshold"] is None


@pytest.mark.parametrize("seed_type, labels, value, expected", [
    ("high_temperature", {"gpu": "0"}, "88", {"gpu": "0", "temperature": 88}),
    ("low_utilization", {"gpu": "1"}, "0.25", {"gpu": "1", "utilization": 25.0}),
    ("memory_exhaustion", {"gpu": "2"}, "0.97", {"gpu": "2", "memUtilization": 97.0}),
    ("unbalanced_load", {}, "0.45", {"loadVariance": 45.0}),
    ("convergence_detected", {"project": "p"}, "0.002", {"projectId": "p"}),
    ("slow_step_detected", {"workflow": "wf-1", "step": "embed"}, "900",
     {"workflowId": "wf-1", "stepId": "embed", "avgDuration": 900}),
    ("error_performance_correlation", {}, "87",
     {"avgTemp": 87, "possibleCause": "high_gpu_temperature"}),
    ("threshold_exceeded", {"agent": "rag-1"}, "0.3",
     {"agentId": "rag-1", "metric_name": "SomeCheck", "current_value": 0.3,
      "threshold_value": 0.25, "tags": {"agent": "rag-1", "category": "gpu"}}),
])
def test_each_seed_type_carries_the_fields_of_the_seeds_message(seed_type, labels, value, expected):
    message = seed_message(seed_alert("SomeCheck", seed_type, value, "0.25", category="gpu",
                                      **labels))
    assert {k: message.get(k) for k in expected} == expected


def test_system_message_is_the_rule_engines_shape_with_the_numbers():
    message = seed_message(seed_alert("TrainingLossHigh", "high_training_loss", "6.2", "5",
                                      project="proj-1"))
    message["recommendation"] = "Training loss is unusually high (>5.0)."
    system = system_message(message)
    assert {k: system[k] for k in ("rule", "severity", "message", "timestamp")} == {
        "rule": "high_training_loss", "severity": "warning",
        "message": "Training loss is unusually high (>5.0).", "timestamp": message["timestamp"]}
    assert (system["type"], system["alertname"]) == ("high_training_loss", "TrainingLossHigh")
    assert (system["value"], system["threshold"]) == (6.2, 5)


def test_console_text_prints_value_threshold_and_seed_type():
    message = seed_message(seed_alert("GpuTemperatureHigh", "high_temperature", "88", "85",
                                      severity="critical", category="gpu", gpu="0"))
    text = console_text(message)
    assert text.startswith("[CRITICAL ALERT] 2026-11-22T10:00:00Z\n"
                           "Metric: GpuTemperatureHigh (high_temperature)\n"
                           "Current Value: 88\nThreshold: 85\n"
                           "Tags: {'category': 'gpu', 'gpu': '0'}\n")
    assert "Current Value: N/A\nThreshold: N/A" in console_text(seed_message(alert("Bare")))


def rule_annotations() -> list[tuple[dict[str, str], dict[str, str]]]:
    out = []
    for path in sorted((REPO / "prometheus" / "rules").glob("*.alerts.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [({"alertname": r["alert"], **r.get("labels", {})}, r["annotations"])
                    for r in group["rules"] if "alert" in r]
    return out


def test_every_seed_type_of_the_rules_is_known_and_the_system_types_are_seed_000s_rules():
    used = {notes["seed_type"] for _, notes in rule_annotations() if "seed_type" in notes}
    assert used <= set(SEED_TYPES), used - set(SEED_TYPES)
    assert set(SYSTEM_TYPES) <= used
    assert SYSTEM_TYPES == ("high_training_loss", "low_throughput", "sla_breach",
                            "gpu_temperature_critical", "memory_leak_detection")


def test_the_system_rules_advice_is_the_seeds_message():
    """The system channel's `message` is the rule's recommendation: it opens with the text of
    seed 000's ALERT_RULES message."""
    seed_text = {"high_training_loss": "Training loss is unusually high (>5.0).",
                 "low_throughput": "Task throughput below 10/hour.",
                 "sla_breach": "SLA compliance below 90%.",
                 "gpu_temperature_critical": "GPU temperature critical (>90°C).",
                 "memory_leak_detection": "Potential memory leak"}
    for labels, notes in rule_annotations():
        if notes.get("seed_type") in seed_text:
            text = system_message(seed_message({"labels": labels, "annotations": notes,
                                                "status": "firing"}))["message"]
            assert text.startswith(seed_text[notes["seed_type"]]), (labels["alertname"], text)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yml"
    path.write_text(text)
    return str(path)


def test_system_types_default_to_seed_000s_rules_and_can_be_chosen(tmp_path):
    assert load(write(tmp_path, "{}\n"), env={}).alert_bridge.system_types == SYSTEM_TYPES
    chosen = load(write(tmp_path, "alert_bridge:\n  system_types: [sla_breach, high_temperature]\n"),
                  env={})
    assert chosen.alert_bridge.system_types == ("sla_breach", "high_temperature")
    assert load(write(tmp_path, "alert_bridge:\n  system_types: []\n"),
                env={}).alert_bridge.system_types == ()


@pytest.mark.parametrize("text, error", [
    ("alert_bridge:\n  system_types: [sla_beach]\n",
     r"alert_bridge\.system_types\[0\]: expected one of .*got 'sla_beach'"),
    ("alert_bridge:\n  system_types: sla_breach\n",
     r"alert_bridge\.system_types: expected a list"),
])
def test_a_bad_system_type_stops_start_up_naming_the_key(tmp_path, text, error):
    with pytest.raises(ConfigError, match=error):
        load(write(tmp_path, text), env={})
