"""Property: whatever records, mappings and Redis keys arrive, in whatever order, every scrape of
the real exporter parses (prometheus-client's text and OpenMetrics parsers) and passes
`promtool check metrics`, and every record is counted once (applied or invalid).

One exporter serves every example, so families made by earlier examples meet later records,
mappings (applied with SIGHUP) and keys: the "made later" clashes in both directions. Names come
from small pools that collide on purpose: built-ins, key-check families derived from hash fields,
each kind's sample suffixes, reserved and camelCase labels.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import ConfigError
from exporter.domains.mappings import parse_one
from tests.support.exposition import checked_scrape
from tests.support.procs import Exporter, RedisServer, parse_samples, wait_until

pytestmark = pytest.mark.integration

KEY_CHECKS = [
    {"pattern": "prop:{item}:h", "type": "hash", "metric": "prop", "max_keys": 20,
     "help": "Numeric fields of prop:<item>:h."},
    {"pattern": "prop:{item}:l", "type": "list", "metric": "prop_queue", "max_keys": 20,
     "help": "Length of prop:<item>:l."},
]
FIELDS = ["x", "y", "count", "total", "bucket", "sum", "queue", "fooBar", "le", "lat_ms",
          "depth", "x_count", "seconds", "a b"]
NAMES = ["x", "x_count", "x_sum", "x_bucket", "x_total", "x_created", "y", "y_total", "h",
         "h_count", "h_bucket", "prop", "prop_x", "prop_y", "prop_depth", "prop_queue",
         "prop_count", "agent_busy", "agent_queue_depth", "agent_tasks_total",
         "agent_exporter_redis_up", "agent_exporter_key_check_keys", "fooBar", "lat_ms",
         "rag_query_duration_seconds", "swarm_total_agents", "bad name", "depth_seconds"]
TAGS = ["a", "b", "component", "le", "quantile", "__name__", "hostname", "environment",
        "agentId", "bad-label", "x_count"]
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
label_values = texts | st.integers(-5, 5) | st.booleans() | st.just("")
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-10**6, 10**6)

records = st.fixed_dictionaries(
    {"metric_name": st.sampled_from(NAMES), "value": numbers},
    optional={"tags": st.dictionaries(st.sampled_from(TAGS), label_values, max_size=5)
              | st.dictionaries(st.from_regex(r"t[0-9]{1,2}", fullmatch=True), st.just("v"),
                                min_size=25, max_size=40),
              "hostname": st.sampled_from(["h1", "h2", "h\"3\\\n"]),
              "environment": st.sampled_from(["prod", ""]),
              "collector": texts, "version": st.integers(0, 3)})
mappings = st.fixed_dictionaries(
    {"match": st.sampled_from(NAMES + ["x*", "prop_*", "*_count"])},
    optional={"name": st.sampled_from(NAMES), "type": st.sampled_from(["gauge", "counter",
                                                                       "histogram"]),
              "labels": st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
              "scale": st.sampled_from([0.01, 1, -1]), "drop": st.booleans()})
keys = st.dictionaries(
    st.tuples(st.sampled_from(["h", "l"]), texts.filter(lambda t: t and ":" not in t)),
    st.dictionaries(st.sampled_from(FIELDS), numbers | texts, min_size=1, max_size=4),
    max_size=4)


@dataclass
class Running:
    exporter: Exporter
    client: redis.Redis
    config: Path
    records: int = 0  # sent so far


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("property")
    server = RedisServer(workdir / "redis").start()
    config = workdir / "exporter.yml"
    config.write_text(yaml.safe_dump({"key_checks": KEY_CHECKS}))
    exporter = Exporter(workdir, server.url, ("--no-collector.host", "--no-collector.gpu",
                                              "--config", str(config))).wait_ready()
    try:
        yield Running(exporter, server.client(), config)
    finally:
        exporter.stop()
        server.stop()


def valid(mapping: dict) -> bool:
    try:
        parse_one(mapping, "metrics[0]", "test")
    except ConfigError:
        return False
    return not set(mapping.get("labels") or ()) & {"hostname", "environment"}


def reload(running: Running, chosen: list[dict]) -> None:
    """Write the mappings and send SIGHUP; wait until the exporter says it reloaded."""
    def reloaded_at() -> float:
        samples = parse_samples(running.exporter.scrape())
        return samples[("agent_exporter_config_last_reload_success_timestamp_seconds",
                        frozenset())]

    before = reloaded_at()
    running.config.write_text(yaml.safe_dump({"key_checks": KEY_CHECKS, "metrics": chosen}))
    running.exporter.proc.signal(signal.SIGHUP)
    wait_until(lambda: reloaded_at() > before, message="the reload")


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(chosen=st.lists(mappings, max_size=4), data=keys, sent=st.lists(records, max_size=15))
def test_any_records_mappings_and_keys_give_scrapes_that_parse(running, chosen, data, sent):
    client = running.client
    reload(running, [m for m in chosen if valid(m)])
    for (kind, item), fields in data.items():
        key = f"prop:{item}:{kind}"
        client.delete(key)
        if kind == "h":
            client.hset(key, mapping={name: str(v) for name, v in fields.items()})
        else:
            client.rpush(key, *[str(v) for v in fields.values()])
    pipe = client.pipeline(transaction=False)
    for record in sent:
        pipe.publish("events:metrics", orjson.dumps(record))
    pipe.execute()
    running.records += len(sent)

    def handled() -> float:
        return sum(v for (name, labels), v in parse_samples(running.exporter.scrape()).items()
                   if name in ("agent_exporter_events_total", "agent_exporter_events_invalid_total")
                   and ("source", "events:metrics") in labels)

    wait_until(lambda: handled() == running.records, message="every record counted once")
    checked_scrape(running.exporter.url)
