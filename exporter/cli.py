"""The `agent-exporter` command: serve (the default), `publish` an event from a shell.

Settings come from flags, then AGENT_EXPORTER_* (and REDIS_URL) in the environment, then the
YAML file given by --config, then defaults. A bad setting exits 2 naming the key and its origin.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from . import __version__
from .alert_bridge import TOKEN_ENV
from .collectors import COLLECTORS
from .config import SCALARS, ConfigError, load
from .contract import EVENT_TYPES, LOG_LEVELS, TRANSPORTS
from .events import snake
from .redact import install as install_redaction
from .redact import redact, url_secrets

EXIT_CONFIG = 2

PUBLISH_TYPES = {event.command: event.method for event in EVENT_TYPES}


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", metavar="FILE", default=default,
                        help="YAML config file (see examples/agent-exporter.yml); "
                             "env AGENT_EXPORTER_CONFIG")
    parser.add_argument("--redis-url", metavar="URL", default=default,
                        help=f"Redis URL (default {SCALARS['redis_url'][1]}); env REDIS_URL or "
                             "AGENT_EXPORTER_REDIS_URL")
    parser.add_argument("--log-level", choices=LOG_LEVELS,
                        default=default, help="log verbosity (default info)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-exporter",
        description="Prometheus exporter for multi-agent AI systems: turns JSON events on Redis "
                    "(pub/sub or streams), Redis state, host and GPU readings into metrics.",
        epilog="Every config-file key can also be set as AGENT_EXPORTER_<KEY> in the environment. "
               "Precedence: flags > environment > config file > defaults.")
    parser.add_argument("--version", action="version", version=f"agent-exporter {__version__}")
    _common(parser, suppress=False)
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help=f"where to serve /metrics (default {SCALARS['listen'][1]})")
    parser.add_argument("--source", choices=TRANSPORTS,
                        help="read events from pub/sub channels, Redis Streams, or both "
                             "(default pubsub)")
    parser.add_argument("--consumer", metavar="NAME",
                        help="stable consumer name in the stream group (default: host name)")
    parser.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                        help="TLS, basic auth and response headers for every endpoint, in "
                             "Prometheus exporter-toolkit's format (see "
                             "examples/web-config.yml)")
    for name, reg in sorted(COLLECTORS.items()):
        parser.add_argument(f"--collector.{name}", dest=f"collector__{name}",
                            action=argparse.BooleanOptionalAction, default=None,
                            help=f"{reg.help} (default {'on' if reg.default else 'off'})")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    publish = sub.add_parser("publish", help="publish one event (TYPE key=value ...)",
                             description="Publish one well-formed event. Values are JSON when "
                                         "they parse as JSON (numbers, true/false, objects), "
                                         "else strings.")
    _common(publish, suppress=True)
    publish.add_argument("--transport", choices=TRANSPORTS, default="pubsub")
    publish.add_argument("type", choices=sorted(PUBLISH_TYPES))
    publish.add_argument("fields", nargs="*", metavar="key=value")

    from .demo import INCIDENT_NAMES, agent_count, incident_list, positive

    demo = sub.add_parser("demo", help="publish simulated swarm traffic (dashboards, alerts)",
                          description="Publish realistic traffic of a simulated agent swarm "
                                      "through the publisher API: agents, tasks, training runs, "
                                      "RAG queries, workflow steps, errors, seed-004 records, "
                                      "LLM calls, and a GPU host that reports through Redis "
                                      "(metrics:gpu:current; NVML is never read).")
    _common(demo, suppress=True)
    demo.add_argument("--rate", type=positive, default=10.0, metavar="N",
                      help="RAG queries, workflow steps and transient errors per second "
                           "(default 10); status, task, training, record and LLM events come on "
                           "top")
    demo.add_argument("--agents", type=agent_count, default=12, metavar="N",
                      help="agents in the swarm, 1-1000 (default 12)")
    demo.add_argument("--seed", type=int, help="random seed: the same seed gives the same events")
    demo.add_argument("--duration", type=positive, metavar="SECONDS",
                      help="stop after this many seconds (default: run until interrupted)")
    demo.add_argument("--transport", choices=TRANSPORTS, default="pubsub")
    demo.add_argument("--incidents", nargs="?", const=INCIDENT_NAMES, default=(),
                      type=incident_list, metavar="NAME,...",
                      help="schedule incidents in the first minutes, repeated every 2 hours: "
                           "all (no value), or a comma-separated choice of "
                           + ", ".join(INCIDENT_NAMES))
    demo.add_argument("--speed", type=positive, default=1.0, metavar="X",
                      help="simulated seconds per second, to compress time (default 1)")
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {key: getattr(args, key, None)
                             for key in ("redis_url", "listen", "log_level", "source", "consumer",
                                         "web_config_file")}
    switches = {key.split("__", 1)[1]: value for key, value in vars(args).items()
                if key.startswith("collector__") and value is not None}
    if switches:
        flags["collectors"] = switches
    return flags


def _parse_fields(pairs: Sequence[str]) -> dict[str, Any]:
    fields = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {pair!r}")
        try:
            fields[snake(key)] = orjson.loads(text)
        except orjson.JSONDecodeError:
            fields[snake(key)] = text
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path, flags = getattr(args, "config", None), _flags(args)
    try:
        config = load(path, flags=flags)
    except ConfigError as exc:
        print(f"agent-exporter: bad configuration: {redact(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_redaction([*url_secrets(config.redis_url),
                       os.environ.get(TOKEN_ENV, "")])

    if args.command == "publish":
        from .publisher import Publisher

        try:
            fields = _parse_fields(args.fields)
            publisher = Publisher(config.redis_url, transport=args.transport)
            getattr(publisher, PUBLISH_TYPES[args.type])(**fields)
        except (TypeError, ValueError) as exc:
            print(f"agent-exporter publish: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return 0

    if args.command == "demo":
        from .demo import Options, run

        return run(config.redis_url, Options(rate=args.rate, agents=args.agents, seed=args.seed,
                                             duration=args.duration, transport=args.transport,
                                             incidents=args.incidents, speed=args.speed))

    from .app import Exporter

    try:  # the key checks' names are checked against the exporter's own as it starts
        exporter = Exporter(config, reload=lambda: load(path, flags=flags))
    except ConfigError as exc:
        print(f"agent-exporter: bad configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return exporter.run()
