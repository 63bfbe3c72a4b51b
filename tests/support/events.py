"""Event corpora shared by the in-process and end-to-end tests: bad events with the reason each
must be counted under, and hypothesis strategies for arbitrary events."""
from __future__ import annotations

from hypothesis import strategies as st

BAD_EVENTS = [
    ("events:tasks:updates", b"{not json", "not_json"),
    ("events:tasks:updates", b"[1]", "not_object"),
    ("events:tasks:updates", b'"a string"', "not_object"),
    ("events:tasks:updates", {"agent": "a"}, "missing_field"),
    ("events:tasks:updates", {"agent": "a", "status": "done", "duration_seconds": "12"}, "bad_type"),
    ("events:tasks:updates", {"agent": "a", "status": "done", "duration_seconds": -1}, "negative"),
    ("events:tasks:updates", {"agent": "a", "status": "done", "duration_seconds": True}, "bad_type"),
    ("events:tasks:updates", {"agent": "a" * 129, "status": "done"}, "label_too_long"),
    ("events:tasks:updates", {"agent": "a", "status": "done", "timestamp": "yesterday"}, "bad_timestamp"),
    ("events:tasks:updates", b'{"agent":"a","status":"done","duration_seconds":1e999}', "not_json"),
    ("events:rag:queries", {"duration_seconds": 1, "success": True, "relevance_score": 1.5}, "out_of_range"),
    ("events:rag:queries", {"duration_seconds": 1}, "missing_field"),
    ("events:agents:status", {"status": "busy"}, "missing_field"),
    ("events:metrics", {"metric_name": "bad name", "value": 1}, "bad_metric_name"),
    ("events:metrics", {"metric_name": "agent_tasks_total", "value": 1}, "metric_name_collision"),
    ("events:metrics", {"metric_name": "ok_metric", "value": 1, "tags": {"bad-label": "x"}}, "bad_label_name"),
    ("events:tasks:updates", b'{"agent":"' + b"x" * 70000 + b'"}', "too_large"),
    ("events:llm:calls", {"agent": "a", "provider": "openai", "model": "gpt-4o", "operation": "chat",
                          "duration_seconds": 1, "status": "done"}, "bad_value"),
]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20)
field_names = st.sampled_from(["agentType", "agentId", "status", "taskCount", "queueDepth", "load",
                               "available", "agent", "taskId", "duration_seconds", "projectId",
                               "step", "loss", "wer", "success", "cache_hit", "fallback",
                               "relevance_score", "confidence_score", "source", "workflowId",
                               "stepId", "component", "metric_name", "value", "tags", "timestamp",
                               "provider", "model", "operation", "input_tokens", "output_tokens",
                               "cached_input_tokens", "time_to_first_token_seconds", "error_type",
                               "cost_usd"])
events = st.dictionaries(field_names, json_values, max_size=8)
channels = st.sampled_from(["events:agents:status", "events:tasks:updates", "events:training:progress",
                            "events:rag:queries", "events:workflows:steps", "events:errors:x",
                            "events:metrics", "events:llm:calls"])
