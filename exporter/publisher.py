"""The publisher API: what agents import to emit well-formed events, one method per event type.

    from exporter.publisher import Publisher
    events = Publisher("redis://localhost:6379/0")
    events.task_update("task-42", agent="ml-engineer", status="done", duration_seconds=312.5)

Every event gets a timestamp (for the ingest-lag metric) and, over pub/sub, a per-channel
sequence number (`_pub`, `_seq`) from which the exporter counts lost events. `transport` picks
PUBLISH, XADD (to a stream of the channel's name, field `data`) or both. The URL may take any
form the exporter takes (rediss://, redis+sentinel://, …: exporter/redis_client.py).
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import redis

from . import contract
from .redis_client import connect


class Publisher:
    def __init__(self, client: redis.Redis | str = "redis://localhost:6379/0",
                 transport: str = "pubsub", publisher_id: str | None = None,
                 stream_maxlen: int | None = 1_000_000) -> None:
        if transport not in contract.TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(contract.TRANSPORTS)}, "
                             f"not {transport!r}")
        self.redis = connect(client) if isinstance(client, str) else client
        self.transport = transport
        self.publisher_id = publisher_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stream_maxlen = stream_maxlen
        self._seq: dict[str, int] = {}

    # -- one method per event type ------------------------------------------------------------

    def agent_status(self, agent_type: str, status: str, task_count: int | None = None, *,
                     agent_id: str | None = None, queue_depth: int | None = None,
                     load: float | None = None, available: bool | None = None) -> None:
        self.publish(contract.AGENTS, _fields(agentType=agent_type, status=status,
                                              taskCount=task_count, agentId=agent_id,
                                              queueDepth=queue_depth, load=load,
                                              available=available))

    def task_update(self, task_id: str, agent: str, status: str,
                    duration_seconds: float | None = None) -> None:
        self.publish(contract.TASKS, _fields(taskId=task_id, agent=agent, status=status,
                                             duration_seconds=duration_seconds))

    def training_progress(self, project_id: str, step: int | None = None,
                          loss: float | None = None, wer: float | None = None,
                          **metrics: float) -> None:
        self.publish(contract.TRAINING, _fields(projectId=project_id, step=step,
                                                loss=_measurement(loss), wer=_measurement(wer),
                                                **metrics))

    def rag_query(self, duration_seconds: float, success: bool, cache_hit: bool | None = None,
                  relevance_score: float | None = None, confidence_score: float | None = None,
                  fallback: bool | None = None, source: str | None = None) -> None:
        self.publish(contract.RAG, _fields(duration_seconds=duration_seconds, success=success,
                                           cache_hit=cache_hit, relevance_score=relevance_score,
                                           confidence_score=confidence_score, fallback=fallback,
                                           source=source))

    def workflow_step(self, workflow_id: str, step_id: str, duration_seconds: float) -> None:
        self.publish(contract.WORKFLOWS, _fields(workflowId=workflow_id, stepId=step_id,
                                                 duration_seconds=duration_seconds))

    def error(self, kind: str, component: str, error: str, error_id: str | None = None) -> None:
        self.publish(contract.ERRORS + kind, _fields(errorId=error_id or uuid.uuid4().hex,
                                                     component=component, error=error))

    def metric(self, metric_name: str, value: float, unit: str | None = None,
               tags: Mapping[str, str] | None = None, **enrichment: str) -> None:
        """A seed-004 record: {metric_name, value, unit, tags, collector, hostname, …}."""
        self.publish(contract.METRICS, _fields(metric_name=metric_name, value=value, unit=unit,
                                               tags=dict(tags) if tags else None, **enrichment))

    def llm_call(self, agent: str, provider: str, model: str, operation: str,
                 duration_seconds: float, status: str = "ok", *,
                 input_tokens: int | None = None, output_tokens: int | None = None,
                 cached_input_tokens: int | None = None,
                 time_to_first_token_seconds: float | None = None,
                 response_model: str | None = None, error_type: str | int | None = None,
                 cost_usd: float | None = None) -> None:
        """One LLM call (OTel GenAI names on the exporter's side): `provider` as OTel's
        gen_ai.provider.name (openai, anthropic, aws.bedrock, …), input tokens including the
        cached ones; `cost_usd` when the client knows it, else the exporter's price table
        applies. An error type is a string even when it is a status code (429)."""
        self.publish(contract.LLM, _fields(
            agent=agent, provider=provider, model=model, responseModel=response_model,
            operation=operation, input_tokens=input_tokens, output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens, duration_seconds=duration_seconds,
            time_to_first_token_seconds=time_to_first_token_seconds, status=status,
            error_type=None if error_type is None else str(error_type), cost_usd=cost_usd))

    # -- transport ----------------------------------------------------------------------------

    def publish(self, channel: str, event: dict[str, Any]) -> None:
        self.publish_many(channel, [event])

    def publish_many(self, channel: str, events: Iterable[dict[str, Any]]) -> None:
        """Send events one message each, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            event.setdefault("timestamp", time.time())
            if self.transport != "streams":
                seq = self._seq.get(channel, 0) + 1
                self._seq[channel] = seq
                pipe.publish(channel, orjson.dumps({**event, "_pub": self.publisher_id, "_seq": seq}))
            if self.transport != "pubsub":
                pipe.xadd(channel, {"data": orjson.dumps(event)}, maxlen=self.stream_maxlen,
                          approximate=True)
        pipe.execute()


def _fields(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _measurement(value: float | None) -> float | str | None:
    """NaN and infinities travel as strings (JSON has no NaN)."""
    if value is None or value == value and abs(value) != float("inf"):
        return value
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
