"""Configuration: precedence, and a bad file stops start-up with the key and file named."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, load

REPO = Path(__file__).resolve().parent.parent


def test_defaults():
    config = load(None, env={})
    assert config.redis_url == "redis://localhost:6379/0"
    assert config.listen == "0.0.0.0:9842"
    assert config.source == "pubsub"
    assert "events:errors:*" in config.channels


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("redis_url: redis://file:1/0\nlisten: 127.0.0.1:1\nlog_level: warning\n"
                    "series_budget: 5\n")
    env = {"REDIS_URL": "redis://env:2/0", "AGENT_EXPORTER_LISTEN": "127.0.0.1:2"}
    config = load(str(path), env=env, flags={"listen": "127.0.0.1:3"})
    assert config.redis_url == "redis://env:2/0"  # env over file
    assert config.listen == "127.0.0.1:3"  # flag over env
    assert config.log_level == "warning"  # file over default
    assert config.series_budget == 5
    assert load(str(path), env={**env, "AGENT_EXPORTER_REDIS_URL": "redis://pref:3/0"}).redis_url \
        == "redis://pref:3/0"


def test_config_file_from_environment(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("series_ttl_seconds: 60\n")
    assert load(None, env={"AGENT_EXPORTER_CONFIG": str(path)}).series_ttl_seconds == 60


def test_shipped_example_config_loads():
    config = load(str(REPO / "examples" / "agent-exporter.yml"), env={})
    assert config.metrics, "the example shows generic-record mappings"
    records = load(str(REPO / "examples" / "seed-004-records.yml"), env={})
    assert records.origin_labels == ("hostname", "environment") and records.metrics


@pytest.mark.parametrize("text, key", [
    ("redis_urll: redis://x:1/0\n", "redis_urll: unknown key"),
    ("series_budget: many\n", "series_budget: expected an integer"),
    ("series_budget: true\n", "series_budget: expected an integer, got a boolean"),
    ("redis_url: mysql://x\n", "redis_url: not a Redis URL"),
    ("source: kafka\n", "source: expected one of pubsub, streams, both"),
    ("channels:\n  events:x: nonsense\n", "channels.events:x: unknown event type"),
    ("metrics:\n  - name: x\n", "metrics[0].match: required"),
    ("metrics:\n  - match: x\n    type: summary\n", "metrics[0].type"),
    ("collectors:\n  nope: true\n", "collectors.nope: unknown key"),
    ("- just\n- a list\n", "expected a mapping"),
    ("a: [unclosed\n", "not valid YAML"),
    ("alert_bridge:\n  tokenfile: x\n", "alert_bridge.tokenfile: unknown key"),
    ("alert_bridge:\n  token_file: /nonexistent/token\n", "alert_bridge.token_file: cannot read"),
    ("alert_bridge:\n  max_body_bytes: 0\n", "alert_bridge.max_body_bytes: must be greater"),
    ("alert_bridge:\n  enabled: yes please\n", "alert_bridge.enabled: expected true or false"),
    ("alert_bridge:\n  channel_prefix: ''\n", "alert_bridge.channel_prefix: must not be empty"),
    ("streams:\n  start: middle\n", "streams.start"),
    ("max_labels: 0\n", "max_labels: must be greater than 0"),
    ("origin_labels: [hostname, host]\n", "origin_labels[1]: expected one of collector, hostname"),
    ("origin_labels: [version, version]\n", "origin_labels: fields repeat"),
    ("metrics:\n  - match: x\n    name: x_total\n", "metrics[0].name: 'x_total': only a counter"),
    ("metrics:\n  - match: x\n    name: latency_ms\n", "metrics[0].name: 'latency_ms': write units"),
    ("metrics:\n  - match: x\n    type: histogram\n    buckets: [-1, 1]\n",
     "metrics[0].buckets: bounds must not be negative"),
    ("metrics:\n  - match: x\n    help: ' '\n", "metrics[0].help: must not be empty"),
    ("metrics:\n  - match: x\n    labels: [a, a]\n", "metrics[0].labels: label names repeat"),
    ("metrics:\n  - match: x\n    labels: [hostname]\n", "metrics[0].labels: hostname is an origin"),
    ("key_checks:\n  - key: q\n    metric: q_len\n    fields: {depth_ms: d}\n",
     "key_checks[0].fields.depth_ms.name: 'q_len_d'"),
])
def test_bad_file_names_the_key_and_the_file(tmp_path, text, key):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(str(path), env={})
    assert key in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.integration
def test_cli_exits_2_on_bad_or_unreadable_config(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("listen: 9842\n")
    for path, expected in ((bad, f"config file {bad}: listen: expected a string"),
                           (tmp_path / "missing.yml", "cannot read")):
        result = subprocess.run([sys.executable, "-m", "exporter", "--config", str(path)],
                                capture_output=True, text=True, timeout=30, cwd=REPO)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr


@pytest.mark.integration
def test_help_documents_every_flag():
    result = subprocess.run([sys.executable, "-m", "exporter", "--help"], capture_output=True,
                            text=True, timeout=30, cwd=REPO)
    assert result.returncode == 0
    for flag in ("--config", "--redis-url", "--listen", "--log-level", "--source", "--consumer",
                 "--collector.redis_state", "--web.config.file", "publish"):
        assert flag in result.stdout
