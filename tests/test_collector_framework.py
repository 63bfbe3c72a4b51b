"""Collector framework: a failing or hanging collector costs only its own metrics, collectors
switch off by flag, and describe() reads nothing.
"""
from __future__ import annotations

import logging
import re
import threading
import time

import psutil
import pynvml
from prometheus_client.core import GaugeMetricFamily

from exporter import collectors
from exporter.collectors import COLLECTORS, CollectorSet, CollectorSettings
from exporter.collectors.key_checks import DEFAULT_KEY_CHECKS
from exporter.config import load
from tests.support.procs import REPO, value, wait_until


class Working:
    def describe(self):
        return []

    def collect(self):
        yield GaugeMetricFamily("working_value", "A collector that works.", value=42)


class Raising:
    def describe(self):
        return []

    def collect(self):
        raise RuntimeError("sensor on fire")


class Hanging:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.runs = 0

    def describe(self):
        return []

    def collect(self):
        self.runs += 1
        self.release.wait(30)
        yield GaugeMetricFamily("hanging_value", "A collector that hangs until released.",
                                value=1)


def scrape(collector_set: CollectorSet) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in collector_set.collect() for s in family.samples}


def test_failing_and_hanging_collectors_are_reported_and_the_rest_served(caplog):
    hanging = Hanging()
    collector_set = CollectorSet({"working": Working(), "raising": Raising(),
                                  "hanging": hanging}, timeout=0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="exporter.collectors"):
            for _ in range(2):
                started = time.monotonic()
                s = scrape(collector_set)
                assert time.monotonic() - started < 1.0
                assert value(s, "working_value") == 42
                assert value(s, "agent_exporter_collector_success", collector="working") == 1
                assert value(s, "agent_exporter_collector_success", collector="raising") == 0
                assert value(s, "agent_exporter_collector_success", collector="hanging") == 0
                assert value(s, "agent_exporter_collector_duration_seconds",
                             collector="hanging") == 0.3
                assert value(s, "hanging_value") is None
        assert hanging.runs == 1  # still stuck in the first scrape: not started again
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 2  # once a minute per collector, not once per scrape
        assert any("raising failed: RuntimeError: sensor on fire" in m for m in messages)
        assert any("hanging failed: timed out" in m for m in messages)
    finally:
        hanging.release.set()
    wait_until(lambda: value(scrape(collector_set), "hanging_value") == 1, timeout=5,
               message="the released collector served again")


def test_no_collector_flag_removes_its_metrics(redis_url, start_exporter):
    s = start_exporter(redis_url, "--no-collector.host").samples()
    assert not [name for name, _ in s if name.startswith("system_")]
    assert value(s, "agent_exporter_collector_success", collector="host") is None
    assert value(s, "agent_exporter_collector_success", collector="gpu") == 1
    assert value(s, "agent_exporter_collector_success", collector="redis_state") == 1


def test_config_switches_collectors_and_flags_win(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("collectors: {gpu: false, host: false}\n")
    config = load(str(path), env={}, flags={"collectors": {"host": True}})
    assert set(collectors.enabled(config.collectors, collectors.CollectorSettings())) \
        == {"host", "redis_state"}


def test_describe_reads_nothing(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("describe() read something")

    for name in ("cpu_times", "virtual_memory", "disk_partitions", "net_io_counters",
                 "process_iter"):
        monkeypatch.setattr(psutil, name, forbidden)
    monkeypatch.setattr(pynvml, "nvmlInit", forbidden)
    settings = CollectorSettings("redis://127.0.0.1:1/0", key_checks=DEFAULT_KEY_CHECKS)  # nothing there

    names = {name: {m.name for m in COLLECTORS[name].factory(settings).describe()}
             for name in ("host", "gpu", "redis_state")}
    assert {"system_cpu_seconds", "system_load1", "system_filesystem_size_bytes"} <= names["host"]
    assert {"gpu_utilization_ratio", "gpu_energy_joules", "gpu_nvml_available"} <= names["gpu"]
    assert {"agent_active_agents", "gpu_reported_power_watts",
            "agent_exporter_key_check_keys"} <= names["redis_state"]



def test_every_collector_metric_is_documented():
    rows = (REPO / "docs" / "collectors.md").read_text().splitlines()
    documented = {m.group(1) for line in rows if (m := re.match(r"^\| `([a-z_0-9]+)` \|", line))}
    settings = CollectorSettings("redis://127.0.0.1:1/0", key_checks=DEFAULT_KEY_CHECKS)
    exposed = set()
    for name in ("host", "gpu", "redis_state"):
        for family in COLLECTORS[name].factory(settings).describe():
            exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    assert exposed - documented == set()
