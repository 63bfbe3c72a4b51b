"""Configuration: defaults < YAML file < environment < command-line flags.

Every key is declared once, in `SCALARS` or `SECTIONS`; a section's parser lives beside the
component that uses it and imports only `validation`, so nothing imports this module back. A file
with an unknown key, a value of the wrong type, a non-finite number or a bad URL raises
`ConfigError` naming the key and the file, and nothing starts.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from . import redis_client
from .alert_bridge import BridgeSettings, parse_alert_bridge
from .collectors import COLLECTORS
from .collectors.key_checks import DEFAULT_KEY_CHECKS, KeyCheck, parse_key_checks
from .contract import DEFAULT_CHANNELS, LOG_LEVELS, TRANSPORTS, parse_channels
from .domains.llm_settings import LlmSettings, parse_llm
from .domains.mappings import (
    DEFAULT_ORIGIN_LABELS,
    check_origin_labels,
    parse_mappings,
    parse_origin_labels,
)
from .domains.mappings import Mapping as RecordMapping
from .insights import InsightSettings, parse_insights
from .redact import redacted_url
from .sources.streams import StreamsSettings, parse_streams
from .validation import (
    ConfigError,
    expect,
    expect_mapping,
    kind_name,
    listen_address,
    not_negative,
    one_of,
    positive,
    positive_int,
)
from .web_config import load as load_web_config

ENV_PREFIX = "AGENT_EXPORTER_"
__all__ = ["Config", "ConfigError", "load"]


def _redis_url(value: str, key: str, origin: str) -> str:
    """A URL `redis_client` understands, whose TLS files can be read; errors show it redacted."""
    try:
        target = redis_client.parse(value)
    except ValueError as exc:
        raise ConfigError(key, f"{exc} in {redacted_url(value)!r}", origin) from None
    for option in redis_client.TLS_FILES:
        path = target.options.get(option)
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(key, f"{option}: cannot read {path}", origin)
    return value


Check = Callable[[Any, str, str], Any]

def _web_config_file(value: str, key: str, origin: str) -> str:
    """Checked now, whole, so a bad web config stops start-up naming the key inside it."""
    load_web_config(value)
    return value


# key: (type, default, check, help)
SCALARS: dict[str, tuple[type | tuple[type, ...], Any, Check | None, str]] = {
    "redis_url": (str, "redis://localhost:6379/0", _redis_url, "Redis to read events and state from"),
    "listen": (str, "0.0.0.0:9842", listen_address, "HOST:PORT for /metrics and the other endpoints"),
    "log_level": (str, "info", one_of(*LOG_LEVELS), "log verbosity"),
    "source": (str, "pubsub", one_of(*TRANSPORTS),
               "where events come from: pub/sub channels, Redis Streams, or both"),
    "consumer": (str, socket.gethostname(), None, "stable consumer name in the stream group"),
    "max_event_bytes": (int, 65536, positive_int, "larger messages are dropped as too_large"),
    "max_label_length": (int, 128, positive_int, "longer label values make the event invalid"),
    "series_budget": (int, 10000, positive_int, "series per labelled family before __overflow__"),
    "series_ttl_seconds": ((int, float), 1800, not_negative,
                           "drop gauge series not updated for this long (0 keeps them)"),
    "counter_ttl_seconds": ((int, float), 86400, not_negative,
                            "drop counter and histogram series not updated for this long "
                            "(0 keeps them)"),
    "max_generic_metrics": (int, 1000, positive_int, "distinct metric names from events:metrics"),
    "max_labels": (int, 32, positive_int,
                   "labels per events:metrics record and per metric (origin labels included)"),
    "collector_timeout_seconds": ((int, float), 3.0, positive,
                                  "per-collector deadline on each scrape"),
    "web_config_file": (str, None, _web_config_file,
                        "TLS, basic auth and headers for every endpoint (exporter-toolkit format)"),
}


def _number_map(value: Any, key: str, origin: str) -> dict[str, float]:
    expect(value, dict, key, origin)
    return {str(name): not_negative(number, f"{key}.{name}", origin)
            for name, number in value.items()}


def _collectors(value: Any, key: str, origin: str) -> dict[str, bool]:
    expect_mapping(value, COLLECTORS, key, origin)
    return {name: expect(enabled, bool, f"{key}.{name}", origin) for name, enabled in value.items()}


# key: (default factory, parser, help)
SECTIONS: dict[str, tuple[Callable[[], Any], Check, str]] = {
    "channels": (lambda: dict(DEFAULT_CHANNELS), parse_channels, "channel (or glob pattern) → event type"),
    "streams": (StreamsSettings, parse_streams,
                "consumer group settings; keys: stream → event type (default: the channels)"),
    "series_budgets": (dict, _number_map, "per-metric series budget overrides"),
    "series_ttls": (dict, _number_map, "per-metric TTL overrides in seconds"),
    "collectors": (dict, _collectors, "collector name → enabled"),
    "metrics": (tuple, parse_mappings, "how events:metrics records become metrics"),
    "origin_labels": (lambda: DEFAULT_ORIGIN_LABELS, parse_origin_labels,
                      "record fields (collector, hostname, environment, version) that become "
                      "labels"),
    "key_checks": (lambda: DEFAULT_KEY_CHECKS, parse_key_checks, "Redis keys read at scrape time"),
    "alert_bridge": (BridgeSettings, parse_alert_bridge,
                     "POST /alertmanager: Alertmanager webhook → Redis events:alerts:*"),
    "insights": (InsightSettings, parse_insights,
                 "seed 000's events:insights:* from Alertmanager notifications (docs/insights.md)"),
    "llm": (LlmSettings, parse_llm, "LLM prices (USD per million tokens) and daily budgets"),
}


@dataclass(frozen=True)
class Config:
    """The effective configuration; each component is handed the part it uses."""

    redis_url: str
    listen: str
    log_level: str
    source: str
    consumer: str
    max_event_bytes: int
    max_label_length: int
    series_budget: int
    series_ttl_seconds: float
    counter_ttl_seconds: float
    max_generic_metrics: int
    max_labels: int
    collector_timeout_seconds: float
    web_config_file: str | None
    channels: Mapping[str, str]
    streams: StreamsSettings
    series_budgets: Mapping[str, float]
    series_ttls: Mapping[str, float]
    collectors: Mapping[str, bool]
    metrics: tuple[RecordMapping, ...]
    origin_labels: tuple[str, ...]
    key_checks: tuple[KeyCheck, ...]
    alert_bridge: BridgeSettings
    insights: InsightSettings
    llm: LlmSettings
    path: str | None = field(default=None, compare=False)

    def collector_enabled(self, name: str, default: bool) -> bool:
        return self.collectors.get(name, default)


assert {f.name for f in fields(Config)} == set(SCALARS) | set(SECTIONS) | {"path"}


def defaults() -> dict[str, Any]:
    values = {key: spec[1] for key, spec in SCALARS.items()}
    values.update({key: factory() for key, (factory, _, _) in SECTIONS.items()})
    return values


def _check_scalar(key: str, value: Any, origin: str) -> Any:
    kind, _, check, _ = SCALARS[key]
    expect(value, kind, key, origin)
    return check(value, key, origin) if check else value


def _from_env(key: str, raw: str, origin: str) -> Any:
    kinds = SCALARS[key][0]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    try:
        if int in kinds and raw.strip().lstrip("-").isdigit():
            return int(raw)
        if float in kinds:
            return float(raw)
        if int in kinds:
            return int(raw)
    except ValueError:
        raise ConfigError(key, f"expected {kind_name(kinds)}, got {raw!r}", origin) from None
    return raw


def read_file(path: str) -> dict[str, Any]:
    """The YAML mapping in `path`; ConfigError for anything that keeps it from being one."""
    origin = f"config file {path}"
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError("--config", f"cannot read: {exc.strerror or exc}", origin) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("(file)", f"not UTF-8 text (byte {exc.start})", origin) from None
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"not valid YAML: {exc}", origin) from None
    except RecursionError:
        raise ConfigError("(file)", "nested too deeply to be a configuration", origin) from None
    raw = {} if raw is None else raw
    return expect_mapping(raw, set(SCALARS) | set(SECTIONS), "", origin)


def load(path: str | None = None, env: Mapping[str, str] | None = None,
         flags: Mapping[str, Any] | None = None) -> Config:
    """Build the effective configuration; raises ConfigError on the first bad key."""
    env = os.environ if env is None else env
    values = defaults()
    path = path or env.get(ENV_PREFIX + "CONFIG") or None

    if path:
        origin = f"config file {path}"
        for key, value in read_file(path).items():
            if key in SCALARS:
                values[key] = _check_scalar(key, value, origin)
            else:
                values[key] = SECTIONS[key][1](value, key, origin)

    if "REDIS_URL" in env:
        values["redis_url"] = _check_scalar("redis_url", env["REDIS_URL"], "environment REDIS_URL")
    for key in SCALARS:
        name = ENV_PREFIX + key.upper()
        if name in env:
            origin = f"environment {name}"
            values[key] = _check_scalar(key, _from_env(key, env[name], origin), origin)

    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key == "collectors":
            values["collectors"] = {**values["collectors"], **value}
        else:
            values[key] = _check_scalar(key, value, f"flag --{key.replace('_', '-')}")

    check_origin_labels(values["metrics"], values["origin_labels"], "metrics",
                        f"config file {path}" if path else "config")
    return Config(**values, path=path)
