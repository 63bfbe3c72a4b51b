"""Alerts in the shapes the agents receive them: seed 000's `events:alerts:*` messages, its
`evaluateAlerts()` messages on `events:alerts:system`, and seed 004's console text.

Agents written against the seeds read `type`, the number that fired and the scope fields of the
seed's message for that type (`projectId`, `workflowId`, …), not Prometheus label sets. The rules
carry those as annotations (`seed_type`, `value`, `threshold`) and labels, and this module maps
them back, so an alert looks the same to an agent whether a seed agent or Prometheus raised it.
"""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

# The alert types the seeds name (seed 000's `type` / `rule`; seed 004's threshold checks).
SEED_TYPES = (
    "high_training_loss", "low_throughput", "sla_breach", "gpu_temperature_critical",
    "memory_leak_detection", "high_temperature", "low_utilization", "memory_exhaustion",
    "unbalanced_load", "loss_plateau", "convergence_detected", "slow_step_detected",
    "error_performance_correlation", "threshold_exceeded", "performance_rankings_updated",
)
# Seed 000's ALERT_RULES: the alerts its evaluateAlerts() publishes on events:alerts:system.
SYSTEM_TYPES = ("high_training_loss", "low_throughput", "sla_breach", "gpu_temperature_critical",
                "memory_leak_detection")
SYSTEM_CATEGORY = "system"
DEFAULT_CATEGORY = "system"
# A category becomes part of a channel name: keep it to a plain word, else use the default.
CATEGORY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# Alert labels → the seed's field for the same thing (seed 000: projectId in the training alerts,
# workflowId/stepId in slow_step_detected; agentId and gpu name the agent and the GPU).
SCOPE_FIELDS = {"project": "projectId", "agent": "agentId", "gpu": "gpu",
                "workflow": "workflowId", "step": "stepId"}
# The seed's own name for the number that fired, per type, and the factor from the rule's base
# unit to the seed's (the seed gives utilisation and load variance in percent).
VALUE_FIELDS: dict[str, tuple[str, float]] = {
    "high_temperature": ("temperature", 1),
    "low_utilization": ("utilization", 100),
    "memory_exhaustion": ("memUtilization", 100),
    "unbalanced_load": ("loadVariance", 100),
    "loss_plateau": ("avgLoss", 1),
    "slow_step_detected": ("avgDuration", 1),
    "error_performance_correlation": ("avgTemp", 1),
}
# Fields that seed 000's message for the type always carries with the same value.
FIXED_FIELDS = {"error_performance_correlation": {"possibleCause": "high_gpu_temperature"}}
THRESHOLD_CHECK = "threshold_exceeded"  # seed 004: metric_name, current_value, threshold_value, tags
UNTAGGED = ("alertname", "severity")  # labels that seed 004's `tags` leave out


def number(text: str | None) -> float | int | str | None:
    """An annotation as a JSON number when it is one ("91" → 91, "0.95" → 0.95); text that is
    not a finite number ("NaN", "+Inf", "n/a") stays text, a missing one is None."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        parsed = float(text)
    except ValueError:
        return text
    return parsed if math.isfinite(parsed) else text


def category(labels: dict[str, str]) -> str:
    value = labels.get("category", "")
    return value if CATEGORY_RE.match(value) else DEFAULT_CATEGORY


def now() -> str:
    """The time as seed 000 writes it (JavaScript's toISOString: milliseconds, `Z`)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed_message(alert: dict[str, Any]) -> dict[str, Any]:
    """One alert in seed 000's `events:alerts:<category>` shape for its type, plus what
    Alertmanager knows about it."""
    labels: dict[str, str] = alert["labels"]
    notes: dict[str, str] = alert.get("annotations", {})
    alertname = labels["alertname"]
    seed_type = notes.get("seed_type") or alertname
    value, threshold = number(notes.get("value")), number(notes.get("threshold"))
    message: dict[str, Any] = {
        "severity": labels.get("severity", "unknown"),
        "type": seed_type,
        "alertname": alertname,
        "message": notes.get("summary") or notes.get("description") or alertname,
        "description": notes.get("description", ""),
        "recommendation": notes.get("recommendation", ""),
        "value": value,
        "threshold": threshold,
    }
    message.update({field: labels[label] for label, field in SCOPE_FIELDS.items()
                    if labels.get(label)})
    if seed_type in VALUE_FIELDS and isinstance(value, (int, float)):
        field, factor = VALUE_FIELDS[seed_type]
        message[field] = value if factor == 1 else round(value * factor, 9)
    message.update(FIXED_FIELDS.get(seed_type, {}))
    if seed_type == THRESHOLD_CHECK:
        message.update(metric_name=alertname, current_value=value, threshold_value=threshold,
                       tags={k: v for k, v in labels.items() if k not in UNTAGGED})
    message.update({
        "status": alert["status"],
        "category": category(labels),
        "labels": labels,
        "startsAt": alert.get("startsAt", ""),
        "timestamp": now(),
    })
    if alert["status"] == "resolved":  # a firing alert's endsAt is Go's zero time or a guess
        message["endsAt"] = alert.get("endsAt", "")
    for name in ("fingerprint", "generatorURL"):
        if alert.get(name):
            message[name] = alert[name]
    if notes.get("runbook_url"):
        message["runbook_url"] = notes["runbook_url"]
    return message


def system_message(message: dict[str, Any]) -> dict[str, Any]:
    """Seed 000's evaluateAlerts() message (`rule, severity, message, timestamp`) for a firing
    alert of its ALERT_RULES; the seed's `message` is the rule's advice, which the rules carry as
    their recommendation. `type`, `alertname`, `value` and `threshold` are added for agents that
    read one shape on every channel."""
    return {
        "rule": message["type"],
        "severity": message["severity"],
        "message": message["recommendation"] or message["message"],
        "timestamp": message["timestamp"],
        "type": message["type"],
        "alertname": message["alertname"],
        "value": message["value"],
        "threshold": message["threshold"],
    }


def console_text(message: dict[str, Any]) -> str:
    """Seed 004's ConsoleAlertChannel format, with the alert's value and threshold (N/A only
    when the rule sets no such annotation)."""
    resolved = message["status"] == "resolved"
    when = message.get("endsAt", "") if resolved else message["startsAt"]
    tags = {k: v for k, v in sorted(message["labels"].items()) if k not in UNTAGGED}
    metric = message["alertname"]
    if message["type"] != metric:
        metric += f" ({message['type']})"

    def shown(name: str) -> Any:
        return "N/A" if message[name] is None else message[name]

    lines = [f"[{message['severity'].upper()} ALERT{' RESOLVED' if resolved else ''}] {when}",
             f"Metric: {metric}",
             f"Current Value: {shown('value')}",
             f"Threshold: {shown('threshold')}",
             f"Tags: {tags}",
             f"Message: {message['message']}"]
    lines += [f"{name.capitalize()}: {message[name]}" for name in ("description", "recommendation")
              if message[name]]
    return "\n".join(lines)
