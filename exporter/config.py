"""Configuration: defaults < YAML file < environment < command-line flags.

Every key is declared once in `SCALARS` or `SECTIONS`; a file with an unknown key, a value of the
wrong type or a bad URL raises `ConfigError` naming the key and the file, and nothing starts.
"""
from __future__ import annotations

import copy
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import yaml

from .channels import DEFAULT_CHANNELS, DOMAINS

ENV_PREFIX = "AGENT_EXPORTER_"


class ConfigError(Exception):
    """A configuration problem; the message names the key and where it came from."""

    def __init__(self, key: str, problem: str, origin: str = "config") -> None:
        super().__init__(f"{origin}: {key}: {problem}")
        self.key = key


def expect(value: Any, kind: type | tuple[type, ...], key: str, origin: str) -> Any:
    """Check a value's type (bool is not a number here); return it."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigError(key, f"expected {_kind_name(kinds)}, got a boolean", origin)
    if not isinstance(value, kinds):
        raise ConfigError(key, f"expected {_kind_name(kinds)}, got {type(value).__name__}", origin)
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def expect_mapping(value: Any, allowed: set[str], key: str, origin: str) -> dict[str, Any]:
    """A mapping whose keys are all in `allowed`."""
    expect(value, dict, key, origin)
    for name in value:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}" if key else str(name),
                              f"unknown key (known: {', '.join(sorted(allowed))})", origin)
    return value


def _redis_url(value: str, key: str, origin: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
        raise ConfigError(key, f"not a Redis URL (redis://host:port/db): {value!r}", origin)
    try:
        parsed.port  # noqa: B018 — raises on a bad port
    except ValueError:
        raise ConfigError(key, f"bad port in {value!r}", origin) from None
    return value


def _listen(value: str, key: str, origin: str) -> str:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(key, f"expected HOST:PORT, got {value!r}", origin)
    return value


def _one_of(*choices: str) -> Callable[[str, str, str], str]:
    def check(value: str, key: str, origin: str) -> str:
        if value not in choices:
            raise ConfigError(key, f"expected one of {', '.join(choices)}, got {value!r}", origin)
        return value
    return check


def _positive(value: float, key: str, origin: str) -> float:
    if value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value}", origin)
    return value


def _not_negative(value: float, key: str, origin: str) -> float:
    if value < 0:
        raise ConfigError(key, f"must not be negative, got {value}", origin)
    return value


def _web_config_file(value: str, key: str, origin: str) -> str:
    """Checked now, whole, so a bad web config stops start-up naming the key inside it."""
    from .web_config import load as load_web_config

    load_web_config(value)
    return value


# key: (type, default, extra check, help)
SCALARS: dict[str, tuple[type | tuple[type, ...], Any, Callable | None, str]] = {
    "redis_url": (str, "redis://localhost:6379/0", _redis_url, "Redis to read events and state from"),
    "listen": (str, "0.0.0.0:9842", _listen, "HOST:PORT for /metrics and the other endpoints"),
    "log_level": (str, "info", _one_of("debug", "info", "warning", "error"), "log verbosity"),
    "source": (str, "pubsub", _one_of("pubsub", "streams", "both"),
               "where events come from: pub/sub channels, Redis Streams, or both"),
    "consumer": (str, socket.gethostname(), None, "stable consumer name in the stream group"),
    "max_event_bytes": (int, 65536, _positive, "larger messages are dropped as too_large"),
    "max_label_length": (int, 128, _positive, "longer label values make the event invalid"),
    "series_budget": (int, 10000, _positive, "series per labelled family before __overflow__"),
    "series_ttl_seconds": ((int, float), 1800, _not_negative,
                           "drop series not updated for this long (0 keeps them)"),
    "max_generic_metrics": (int, 1000, _positive, "distinct metric names from events:metrics"),
    "collector_timeout_seconds": ((int, float), 3.0, _positive,
                                  "per-collector deadline on each scrape"),
    "web_config_file": (str, None, _web_config_file,
                        "TLS, basic auth and headers for every endpoint (exporter-toolkit format)"),
}


def _channels(value: Any, key: str, origin: str) -> dict[str, str]:
    expect(value, dict, key, origin)
    for channel, domain in value.items():
        expect(channel, str, key, origin)
        if domain not in DOMAINS:
            raise ConfigError(f"{key}.{channel}",
                              f"unknown event type {domain!r} (known: {', '.join(DOMAINS)})", origin)
    return dict(value)


def _int_map(value: Any, key: str, origin: str) -> dict[str, float]:
    expect(value, dict, key, origin)
    for name, number in value.items():
        expect(number, (int, float), f"{key}.{name}", origin)
        _not_negative(number, f"{key}.{name}", origin)
    return dict(value)


DEFAULT_STREAMS: dict[str, Any] = {
    "group": "agent-exporter",
    "start": "0",
    "batch": 500,
    "block_ms": 1000,
    "claim_idle_seconds": 60.0,
    "checkpoint_seconds": 5.0,
    "keys": None,
}


def _streams(value: Any, key: str, origin: str) -> dict[str, Any]:
    expect_mapping(value, set(DEFAULT_STREAMS), key, origin)
    merged = {**DEFAULT_STREAMS, **value}
    expect(merged["group"], str, f"{key}.group", origin)
    if merged["start"] not in ("0", "$"):
        raise ConfigError(f"{key}.start", "expected \"0\" (whole stream) or \"$\" (new entries)",
                          origin)
    for name in ("batch", "block_ms"):
        _positive(expect(merged[name], int, f"{key}.{name}", origin), f"{key}.{name}", origin)
    for name in ("claim_idle_seconds", "checkpoint_seconds"):
        _positive(expect(merged[name], (int, float), f"{key}.{name}", origin), f"{key}.{name}", origin)
    if merged["keys"] is not None:
        merged["keys"] = _channels(merged["keys"], f"{key}.keys", origin)
    return merged


def _collectors(value: Any, key: str, origin: str) -> dict[str, bool]:
    from .collectors import COLLECTORS

    expect_mapping(value, set(COLLECTORS), key, origin)
    for name, enabled in value.items():
        expect(enabled, bool, f"{key}.{name}", origin)
    return dict(value)


def _sections() -> dict[str, tuple[Callable[[], Any], Callable[[Any, str, str], Any], str]]:
    """Nested sections: (default factory, parser, help). Parsers live beside their users."""
    from .alert_bridge import DEFAULT_ALERT_BRIDGE, parse_alert_bridge
    from .collectors.redis_state import DEFAULT_KEY_CHECKS, parse_key_checks
    from .domains.generic import parse_mappings

    return {
        "channels": (lambda: dict(DEFAULT_CHANNELS), _channels,
                     "channel (or glob pattern) → event type"),
        "streams": (lambda: dict(DEFAULT_STREAMS), _streams,
                    "consumer group settings; keys: stream → event type (default: the channels)"),
        "series_budgets": (dict, _int_map, "per-metric series budget overrides"),
        "series_ttls": (dict, _int_map, "per-metric TTL overrides in seconds"),
        "collectors": (dict, _collectors, "collector name → enabled"),
        "metrics": (list, parse_mappings, "how events:metrics records become metrics"),
        "key_checks": (lambda: copy.deepcopy(DEFAULT_KEY_CHECKS), parse_key_checks,
                       "Redis keys read at scrape time"),
        "alert_bridge": (lambda: dict(DEFAULT_ALERT_BRIDGE), parse_alert_bridge,
                         "POST /alertmanager: Alertmanager webhook → Redis events:alerts:*"),
    }


@dataclass
class Config:
    values: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def collector_enabled(self, name: str, default: bool) -> bool:
        return self.values["collectors"].get(name, default)


def defaults() -> dict[str, Any]:
    values = {key: spec[1] for key, spec in SCALARS.items()}
    for key, (factory, _, _) in _sections().items():
        values[key] = factory()
    return values


def _check_scalar(key: str, value: Any, origin: str) -> Any:
    kind, _, check, _ = SCALARS[key]
    expect(value, kind, key, origin)
    return check(value, key, origin) if check else value


def _from_env(key: str, raw: str) -> Any:
    kind = SCALARS[key][0]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    origin = f"environment {ENV_PREFIX}{key.upper()}"
    try:
        if int in kinds and raw.strip().lstrip("-").isdigit():
            return int(raw)
        if float in kinds:
            return float(raw)
        if int in kinds:
            return int(raw)
    except ValueError:
        raise ConfigError(key, f"expected {_kind_name(kinds)}, got {raw!r}", origin) from None
    return raw


def load(path: str | None = None, env: Mapping[str, str] | None = None,
         flags: Mapping[str, Any] | None = None) -> Config:
    """Build the effective configuration; raises ConfigError on the first bad key."""
    env = os.environ if env is None else env
    values = defaults()
    sections = _sections()
    path = path or env.get(ENV_PREFIX + "CONFIG") or None

    if path:
        origin = f"config file {path}"
        try:
            with open(path, encoding="utf-8") as handle:
                raw = yaml.safe_load(handle)
        except OSError as exc:
            raise ConfigError("--config", f"cannot read: {exc.strerror}", origin) from None
        except yaml.YAMLError as exc:
            raise ConfigError("(file)", f"not valid YAML: {exc}", origin) from None
        raw = {} if raw is None else raw
        expect_mapping(raw, set(SCALARS) | set(sections), "", origin)
        for key, value in raw.items():
            if key in SCALARS:
                values[key] = _check_scalar(key, value, origin)
            else:
                values[key] = sections[key][1](value, key, origin)

    if "REDIS_URL" in env:
        values["redis_url"] = _check_scalar("redis_url", env["REDIS_URL"], "environment REDIS_URL")
    for key in SCALARS:
        name = ENV_PREFIX + key.upper()
        if name in env:
            values[key] = _check_scalar(key, _from_env(key, env[name]), f"environment {name}")

    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key == "collectors":
            values["collectors"] = {**values["collectors"], **value}
        else:
            values[key] = _check_scalar(key, value, f"flag --{key.replace('_', '-')}")

    return Config(values=values, path=path)
