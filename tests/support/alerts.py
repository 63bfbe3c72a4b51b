"""Alertmanager webhook payloads (version 4), as Alertmanager sends them to the alert bridge."""
from __future__ import annotations

from typing import Any

import orjson


def alert(alertname: str = "GpuTemperatureCritical", severity: str = "critical",
          category: str | None = "gpu", status: str = "firing", **labels: str) -> dict[str, Any]:
    """One alert as Alertmanager's webhook (version 4) sends it."""
    all_labels = {"alertname": alertname, "severity": severity, **labels}
    if category is not None:
        all_labels["category"] = category
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{alertname} on gpu 0", "description": "GPU 0 is at 91 °C.",
                        "recommendation": "Check cooling system and reduce load",
                        "runbook_url": "https://example.com/runbooks/gpu"},
        "startsAt": "2026-11-22T10:00:00Z",
        "endsAt": "2026-11-22T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=gpu_temperature_celsius",
        "fingerprint": "f" * 16,
    }


def payload(*alerts: dict[str, Any]) -> bytes:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return orjson.dumps({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0,
                         "status": status, "receiver": "redis-bridge", "groupLabels": {},
                         "commonLabels": {}, "commonAnnotations": {},
                         "externalURL": "http://alertmanager:9093", "alerts": list(alerts)})
