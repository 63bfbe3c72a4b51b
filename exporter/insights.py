"""Seed 000's insights (`events:insights:*`), built from Alertmanager notifications.

The three insights are alerts in Prometheus (prometheus/rules/): AgentPerformanceRanking (one
per job, the ranking rendered into its `rankings` annotation), WorkflowStepSlow and
GpuHotDuringCriticalErrors. Alertmanager already delivers each group once
for a whole HA cluster and retries until the bridge answers 200, so an insight built from a
notification is neither duplicated by a second exporter nor lost; the bridge publishes the
insights in the same MULTI/EXEC as the alerts. docs/insights.md explains the design.

A correlation names the critical error (`errorId`), which is no metric label: every exporter
that sees a critical error adds its id to a sorted set in Redis (ZADD of the same id twice, as an
HA pair does, keeps one), and the notification takes the ids of the window and removes them in
the same transaction that publishes, so each error is reported once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from .alert_messages import now, number
from .domains import Domain
from .store import Store
from .throttle import Throttled
from .validation import ConfigError, expect, expect_mapping, positive

log = logging.getLogger(__name__)
throttled = Throttled(log)

INSIGHTS = "events:insights:"
RANKINGS_HASH = "metrics:agents:rankings"  # seed 000: HSET performance_ranked <json>
RANKED = "performance_rankings_updated"
SLOW_STEP = "slow_step_detected"
CORRELATION = "error_performance_correlation"
MAX_QUEUED_ERRORS = 10_000  # critical error ids waiting for Redis
MAX_CORRELATIONS = 1_000  # correlations one notification publishes (an error storm waits its turn)
FLUSH_SECONDS = 1.0  # how often they are written
CHANNELS = {RANKED: "agent_performance", SLOW_STEP: "workflows", CORRELATION: "correlations"}


@dataclass(frozen=True)
class InsightSettings:
    """The `insights` config section."""

    enabled: bool = True
    channel_prefix: str = INSIGHTS
    critical_errors_key: str = "insights:errors:critical"
    correlation_window_seconds: float = 900.0


def parse_insights(value: Any, key: str, origin: str) -> InsightSettings:
    expect_mapping(value, InsightSettings.__dataclass_fields__, key, origin)
    out: dict[str, Any] = {}
    if "enabled" in value:
        out["enabled"] = expect(value["enabled"], bool, f"{key}.enabled", origin)
    for name in ("channel_prefix", "critical_errors_key"):
        if name in value:
            out[name] = expect(value[name], str, f"{key}.{name}", origin)
            if not out[name]:
                raise ConfigError(f"{key}.{name}", "must not be empty", origin)
    if "correlation_window_seconds" in value:
        out["correlation_window_seconds"] = positive(
            value["correlation_window_seconds"], f"{key}.correlation_window_seconds", origin)
    return InsightSettings(**out)


def seed_type(alert: dict[str, Any]) -> str:
    return str(alert.get("annotations", {}).get("seed_type", ""))


def is_insight_only(alert: dict[str, Any]) -> bool:
    """A ranking is news for the task distributor, not an alert: it goes to the insights only."""
    return seed_type(alert) == RANKED


def _number(notes: dict[str, str], name: str) -> float:
    """An annotation as a number; 0 when absent or not a finite number (a query template found
    nothing, or a rule divided by zero)."""
    value = number(notes.get(name))
    return float(value) if isinstance(value, int | float) else 0.0


def _count(notes: dict[str, str], name: str) -> int:
    """An annotation as a whole count; 0 when it is not a number."""
    return _whole(_number(notes, name))


def _whole(value: float) -> int:
    """A count the rules rounded, as an integer; 0 when it is not one a JSON reader can hold
    exactly (negative, not finite, 2**53 or more)."""
    return int(value) if 0 <= value < 2**53 else 0


def ranking_lines(text: str) -> list[dict[str, Any]]:
    """The `rankings` annotation of AgentPerformanceRanking: per line `score done mean_seconds
    failed agent` (the agent last, as it may hold spaces); a line that does not parse is skipped."""
    ranked = []
    for line in text.splitlines():
        parts = line.strip().split(" ", 4)
        try:
            if len(parts) < 5 or not parts[4]:
                raise ValueError("fewer than 5 fields")
            score, done, mean, failed = (float(p) if p else 0.0 for p in parts[:4])
        except ValueError as exc:
            if line.strip():
                throttled("ranking", logging.WARNING, "insights: skipped the ranking line %r "
                          "(expected `score done mean_seconds failed agent`): %s", line, exc)
            continue
        ranked.append({"agentType": parts[4], "score": score, "tasksCompleted": _whole(done),
                       "avgDuration": mean, "errorRate": _whole(failed)})
    return ranked


def rankings(alerts: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The seed's `performance_rankings_updated` from the firing ranking alerts (one per job),
    best first; None when no agent is ranked."""
    ranked = [entry for alert in alerts if alert["status"] == "firing" and seed_type(alert) == RANKED
              for entry in ranking_lines(alert.get("annotations", {}).get("rankings", ""))]
    if not ranked:
        return None
    ranked.sort(key=lambda r: (-r["score"], r["agentType"]))
    return {"type": RANKED, "rankings": ranked, "timestamp": now()}


def slow_step(alert: dict[str, Any]) -> dict[str, Any]:
    """The seed's `slow_step_detected` for a firing WorkflowStepSlow."""
    notes, labels = alert.get("annotations", {}), alert["labels"]
    return {"type": SLOW_STEP, "workflowId": labels.get("workflow", ""),
            "stepId": labels.get("step", ""), "avgDuration": _number(notes, "value"),
            "sampleCount": _count(notes, "sample_count"),
            "threshold": _number(notes, "threshold"),
            "recommendation": notes.get("recommendation", ""), "timestamp": now()}


def correlation(alert: dict[str, Any], error_id: str) -> dict[str, Any]:
    """The seed's `error_performance_correlation` for one critical error during a hot GPU."""
    notes = alert.get("annotations", {})
    return {"type": CORRELATION, "errorId": error_id, "possibleCause": "high_gpu_temperature",
            "avgTemp": _number(notes, "value"), "threshold": _number(notes, "threshold"),
            "recommendation": notes.get("recommendation", ""), "timestamp": now()}


@dataclass(frozen=True)
class Batch:
    """What one notification publishes: (channel, message) pairs and the error ids it reports."""

    messages: tuple[tuple[str, dict[str, Any]], ...] = ()
    reported_errors: tuple[str, ...] = ()


class Insights:
    """Builds a notification's insights (reading the recent critical errors) and queues them on
    the bridge's transaction."""

    def __init__(self, settings: InsightSettings, client: redis.Redis, store: Store) -> None:
        self.settings = settings
        self.redis = client
        self.store = store
        self.published = store.family(
            "agent_exporter_insights_published_total", "counter",
            "Seed 000 insights the alert bridge published on events:insights:*, by type.",
            ["type"], ttl=0)

    def channel(self, kind: str) -> str:
        return self.settings.channel_prefix + CHANNELS[kind]

    def build(self, alerts: list[dict[str, Any]]) -> Batch:
        """Raises redis.RedisError when the critical errors cannot be read (the bridge answers 503)."""
        if not self.settings.enabled:
            return Batch()
        out: list[tuple[str, dict[str, Any]]] = []
        ranking = rankings(alerts)
        if ranking:
            out.append((self.channel(RANKED), ranking))
        firing = [a for a in alerts if a["status"] == "firing"]
        out += [(self.channel(SLOW_STEP), slow_step(a)) for a in firing
                if seed_type(a) == SLOW_STEP]
        hot = [a for a in firing if seed_type(a) == CORRELATION]
        errors: list[str] = []
        if hot:
            since = time.time() - self.settings.correlation_window_seconds
            found: list[bytes] = self.redis.zrangebyscore(  # type: ignore[assignment]
                self.settings.critical_errors_key, since, "+inf", start=0,
                num=MAX_CORRELATIONS)  # the oldest first; the rest at the next notification
            errors = [e.decode() for e in found]
            hottest = max(hot, key=lambda a: _number(a.get("annotations", {}), "value"))
            out += [(self.channel(CORRELATION), correlation(hottest, e)) for e in errors]
        return Batch(tuple(out), tuple(errors))

    def queue(self, pipe: Any, batch: Batch) -> None:
        """Add the batch to the bridge's MULTI/EXEC: publishing and forgetting the reported errors
        succeed or fail together."""
        for channel, message in batch.messages:
            pipe.publish(channel, orjson.dumps(message))
            if message["type"] == RANKED:
                pipe.hset(RANKINGS_HASH, "performance_ranked", orjson.dumps(message["rankings"]))
        if batch.reported_errors:
            pipe.zrem(self.settings.critical_errors_key, *batch.reported_errors)

    def count(self, batch: Batch) -> None:
        """After the transaction succeeded."""
        with self.store.lock:
            for _, message in batch.messages:
                self.published.inc((message["type"],))


class CriticalErrorLog:
    """Remembers critical errors' ids in Redis for the correlation insight. `record` runs on the
    ingest path, under the store's lock, so it only queues the id (bounded; an overflow drops
    the oldest, counted); `run` writes the queue to Redis once a second in one round trip and
    trims errors older than the window. A Redis failure is logged once a minute and the ids are
    kept for the next write."""

    def __init__(self, settings: InsightSettings, client: redis.Redis, store: Store) -> None:
        self.key = settings.critical_errors_key
        self.window = settings.correlation_window_seconds
        self.redis = client
        self.store = store
        self.queue: deque[tuple[str, float]] = deque(maxlen=MAX_QUEUED_ERRORS)
        self.dropped = store.family(
            "agent_exporter_insights_errors_dropped_total", "counter",
            "Critical error ids not kept for the correlation insight: more than "
            f"{MAX_QUEUED_ERRORS} arrived while Redis could not take them.", [], ttl=0)

    def record(self, error_id: str) -> None:
        """Queue an id; called by the dispatcher with the store's lock held."""
        if len(self.queue) == MAX_QUEUED_ERRORS:
            self.dropped.inc((), 1)
        self.queue.append((error_id, time.time()))

    def flush(self) -> None:
        """Write what is queued (every id once, at its first arrival)."""
        taken: dict[str, float] = {}
        while self.queue:
            error_id, when = self.queue.popleft()
            taken.setdefault(error_id, when)
        if not taken:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(self.key, taken, nx=True)
            pipe.zremrangebyscore(self.key, "-inf", time.time() - self.window)
            pipe.expire(self.key, int(self.window) + 60)
            pipe.execute()
        except redis.RedisError as exc:
            throttled("record", logging.WARNING, "insights: cannot record %d critical error "
                      "id(s) yet, kept for the next try: %s", len(taken), exc)
            back = list(taken.items())
            with self.store.lock:  # as record() holds it: the count of what is pushed out is exact
                lost = len(self.queue) + len(back) - MAX_QUEUED_ERRORS
                if lost > 0:
                    self.dropped.inc((), lost)
                self.queue.extendleft(reversed(back))

    def run(self, stop: threading.Event) -> None:
        """Flush once a second until stopped, then once more; never dies of a surprise."""
        while True:
            stopping = stop.wait(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception as exc:  # a bug: say so once a minute, keep the thread
                throttled("flush", logging.ERROR, "insights: writing critical error ids failed: "
                          "%s: %s", type(exc).__name__, exc)
            if stopping:
                return


class RecordingCriticalErrors:
    """The errors domain, plus: a valid critical error with an `errorId` goes to the log."""

    def __init__(self, inner: Domain, errors: CriticalErrorLog) -> None:
        self.inner = inner
        self.name = inner.name
        self.errors = errors

    def handle(self, event: dict, channel: str) -> None:
        self.inner.handle(event, channel)  # raises on a bad event: nothing is recorded then
        kind = event.get("kind") or channel.rsplit(":", 1)[-1]
        error_id = event.get("errorId", event.get("error_id"))
        if kind == "critical" and isinstance(error_id, str | int) and str(error_id):
            self.errors.record(str(error_id)[:256])
