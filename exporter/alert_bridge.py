"""Alertmanager webhook → Redis `events:alerts:<category>` (placeholder until the bridge lands)."""
from __future__ import annotations

from typing import Any

DEFAULT_ALERT_BRIDGE: dict[str, Any] = {"max_body_bytes": 1048576}


def parse_alert_bridge(value: Any, key: str, origin: str) -> dict[str, Any]:
    return {**DEFAULT_ALERT_BRIDGE, **value}


class AlertBridge:
    def __init__(self, config: Any, store: Any) -> None:
        self.max_body_bytes = config.alert_bridge["max_body_bytes"]

    def handle(self, headers: Any, body: bytes) -> tuple[int, str, bytes]:
        return 503, "text/plain", b"alert bridge not implemented\n"
