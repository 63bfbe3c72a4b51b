"""The alert bridge: Alertmanager's webhook (POST /alertmanager) → Redis `events:alerts:<category>`.

Agents learn about alerts the way seed 000 has them do it: by subscribing to
`events:alerts:training|gpu|system|distribution|…`. Alertmanager does the routing, grouping,
inhibition and cool-down; the bridge only turns each alert of a notification into one message in
the seed's shape (exporter.alert_messages), prints it in seed 004's console format (the console
channel) and counts it. A firing alert of seed 000's ALERT_RULES also goes to
`events:alerts:system` in that rule engine's shape, as the seed publishes it there.

Alertmanager retries a webhook only on 5xx and drops it on 4xx, so the answers are chosen for
that: a payload that can never succeed gets a 4xx with the reason, and a Redis failure gets a 503
so the notification comes again — an alert is never lost silently. All alerts of one payload go
out in one MULTI/EXEC, so a retry does not duplicate half of them.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from .alert_messages import (
    SEED_TYPES,
    SYSTEM_CATEGORY,
    SYSTEM_TYPES,
    console_text,
    seed_message,
    system_message,
)
from .contract import ALERTS
from .insights import Insights, InsightSettings, is_insight_only
from .redis_client import client as redis_client
from .store import Store
from .validation import ConfigError, expect, expect_mapping, items, one_of, positive_int

log = logging.getLogger(__name__)

TOKEN_ENV = "AGENT_EXPORTER_ALERT_BRIDGE_TOKEN"
LOUD = {"critical", "high", "warning"}  # firing alerts of these severities log at WARNING
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class BridgeSettings:
    """The `alert_bridge` config section."""

    enabled: bool = True
    token_file: str | None = None
    max_body_bytes: int = 1048576
    channel_prefix: str = ALERTS
    system_types: tuple[str, ...] = SYSTEM_TYPES  # also published on <prefix>system, seed 000's way


def read_token(path: str) -> str:
    """The bearer token in `path` (surrounding whitespace stripped); OSError/ValueError if unusable."""
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if not token:
        raise ValueError("the file is empty")
    return token


def parse_alert_bridge(value: Any, key: str, origin: str) -> BridgeSettings:
    """The `alert_bridge` section; the token file must be readable now, so a typo stops start-up."""
    expect_mapping(value, BridgeSettings.__dataclass_fields__, key, origin)
    out: dict[str, Any] = {}
    if "enabled" in value:
        out["enabled"] = expect(value["enabled"], bool, f"{key}.enabled", origin)
    if "max_body_bytes" in value:
        out["max_body_bytes"] = positive_int(value["max_body_bytes"], f"{key}.max_body_bytes",
                                             origin)
    if "channel_prefix" in value:
        out["channel_prefix"] = expect(value["channel_prefix"], str, f"{key}.channel_prefix", origin)
        if not out["channel_prefix"]:
            raise ConfigError(f"{key}.channel_prefix", "must not be empty", origin)
    if "system_types" in value:
        out["system_types"] = tuple(items(value["system_types"], f"{key}.system_types", origin,
                                          one_of(*SEED_TYPES)))
    path = value.get("token_file")
    if path is not None:
        out["token_file"] = expect(path, str, f"{key}.token_file", origin)
        try:
            read_token(path)
        except OSError as exc:
            raise ConfigError(f"{key}.token_file", f"cannot read {path}: {exc.strerror}",
                              origin) from None
        except ValueError as exc:
            raise ConfigError(f"{key}.token_file", f"{path}: {exc}", origin) from None
    return BridgeSettings(**out)


def unguarded_reason(listen: str) -> str:
    """Why the bridge is off: on a non-loopback listener nothing would authenticate the alerts."""
    return (f"alert bridge off: {listen} is not a loopback address and nothing authenticates "
            "POST /alertmanager; set alert_bridge.token_file (or AGENT_EXPORTER_ALERT_BRIDGE_TOKEN),"
            " or basic_auth_users or client_auth_type RequireAndVerifyClientCert in "
            "--web.config.file")


class PayloadError(ValueError):
    """The webhook body is not an Alertmanager version 4 payload; the message says why."""


def _strings(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PayloadError(f"{where} must be an object of strings")
    return value


def parse_payload(body: bytes) -> list[dict[str, Any]]:
    """The alerts of a webhook body, each checked; raises PayloadError before anything is sent."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object (Alertmanager webhook payload)")
    if str(payload.get("version", "4")) != "4":
        raise PayloadError(f"unsupported webhook payload version {payload['version']!r} "
                           "(expected \"4\")")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("\"alerts\" must be a list")
    for n, alert in enumerate(alerts):
        where = f"alerts[{n}]"
        if not isinstance(alert, dict):
            raise PayloadError(f"{where} must be an object")
        labels = _strings(alert.get("labels"), f"{where}.labels")
        if not labels.get("alertname"):
            raise PayloadError(f"{where}.labels has no alertname")
        _strings(alert.get("annotations", {}), f"{where}.annotations")
        if alert.get("status") not in ("firing", "resolved"):
            raise PayloadError(f"{where}.status must be \"firing\" or \"resolved\"")
        for field in ("startsAt", "endsAt", "generatorURL", "fingerprint"):
            if not isinstance(alert.get(field, ""), str):
                raise PayloadError(f"{where}.{field} must be a string")
    return alerts


class AlertBridge:
    """The handler behind POST /alertmanager (mounted by exporter.app)."""

    def __init__(self, settings: BridgeSettings, redis_url: str, store: Store,
                 insights: InsightSettings | None = None) -> None:
        self.enabled = settings.enabled
        self.max_body_bytes = settings.max_body_bytes
        self.prefix = settings.channel_prefix
        self.system_types = frozenset(settings.system_types)
        self.token_file = settings.token_file
        self.env_token: str | None = os.environ.get(TOKEN_ENV) or None
        # One client for the process: redis-py reconnects by itself on the next call. One quick
        # retry covers a pooled connection that died with a Redis restart; beyond that the
        # answer is 503 and Alertmanager's own backoff takes over.
        self.redis = redis_client(redis_url, timeout=5.0, retries=1)
        self.store = store
        self.insights = Insights(insights or InsightSettings(), self.redis, store)
        self.received = store.family(
            "agent_exporter_alerts_received_total", "counter",
            "Alerts received from Alertmanager on POST /alertmanager and published to Redis.",
            ["severity", "status"], ttl=0)

    def token(self) -> str | None:
        """The expected bearer token; the file is read per request so a rotated secret needs no
        restart. The server checks it (with the web config's auth) before reading a body."""
        if self.env_token:
            return self.env_token
        return read_token(self.token_file) if self.token_file else None

    def deliveries(self, messages: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """(channel, message) for each publish: every alert on its category's channel, and a
        firing one of the system types on the system channel too (the seed's evaluateAlerts()
        publishes only when a rule fires, never its end)."""
        out = [(self.prefix + message["category"], message) for message in messages]
        out += [(self.prefix + SYSTEM_CATEGORY, system_message(message)) for message in messages
                if message["status"] == "firing" and message["type"] in self.system_types]
        return out

    def handle(self, body: bytes) -> tuple[int, str, bytes]:
        """Publish the alerts of an authenticated webhook body."""
        try:
            alerts = parse_payload(body)
        except PayloadError as exc:
            log.warning("alert bridge: rejected a payload: %s", exc)
            return 400, TEXT, f"{exc}\n".encode()

        try:
            insights = self.insights.build(alerts)
            alerts = [alert for alert in alerts if not is_insight_only(alert)]
            messages = [seed_message(alert) for alert in alerts]
            pipe = self.redis.pipeline(transaction=True)
            for channel, message in self.deliveries(messages):
                pipe.publish(channel, orjson.dumps(message))
            self.insights.queue(pipe, insights)
            if messages or insights.messages:
                pipe.execute()
        except redis.RedisError as exc:
            log.error("alert bridge: Redis unavailable, %d alert(s) not published (Alertmanager "
                      "will retry): %s", len(alerts), exc)
            return 503, TEXT, f"Redis unavailable: {exc}\n".encode()

        for message in messages:
            loud = message["status"] == "firing" and message["severity"] in LOUD
            log.log(logging.WARNING if loud else logging.INFO, "%s", console_text(message))
        with self.store.lock:
            for message in messages:
                self.received.inc((message["severity"], message["status"]))
        self.insights.count(insights)
        return 200, TEXT, f"published {len(messages)} alert(s)\n".encode()
