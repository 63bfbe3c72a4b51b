"""3. /metrics render time at 1 k / 10 k / 100 k series against prometheus-client's
`generate_latest` on the same data, and how long a render stalls ingestion.

In process: an Exporter (collectors off) is filled through its Dispatcher with agents' status
events and task updates (done and failed, with durations): 42 series per agent. The baseline is a
prometheus-client registry built with the same families, label sets and values (plus the
process, platform and gc collectors the exporter also serves; `_created` series off, so both
expose the same samples). Render times are measured with nothing else running.

Stall: a thread applies task updates through the Dispatcher back to back and records the longest
gap between two consecutive events; compared while the main thread idles, runs the exporter's
render, and runs `generate_latest`.
"""
from __future__ import annotations

import gzip
import random
import threading
import time
from collections.abc import Callable
from itertools import cycle
from pathlib import Path
from typing import Any

import orjson
import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)

from exporter import contract
from exporter.app import Exporter
from exporter.collectors import COLLECTORS
from exporter.config import load

from .common import Result, Target, agent_names, median, sample_lines

SIZES = (1_000, 10_000, 100_000)
SERIES_PER_AGENT = 42  # 6 agent gauges + 2 × (task counter + 17 histogram samples)
RENDER_LIMIT_MS = 250.0
SPEEDUP = 4.0
STALL_LIMIT_MS = 50.0

prometheus_client.disable_created_metrics()


def fill(series: int) -> tuple[Exporter, list[str]]:
    """An exporter holding about `series` samples; returns it and its agents."""
    config = load(None, env={}, flags={"collectors": {name: False for name in COLLECTORS}})
    exporter = Exporter(config)
    agents = agent_names(max(1, round(series / SERIES_PER_AGENT)))
    rand = random.Random(3)
    dispatch = exporter.dispatcher.dispatch
    for agent in agents:
        dispatch(contract.AGENTS, contract.AGENTS, orjson.dumps(
            {"agentType": agent, "status": "busy", "taskCount": rand.randint(0, 5),
             "queueDepth": rand.randint(0, 20), "load": rand.random()}))
        for status in ("done", "done", "done", "failed"):
            dispatch(contract.TASKS, contract.TASKS, orjson.dumps(
                {"agent": agent, "status": status,
                 "duration_seconds": rand.lognormvariate(4.5, 1.0)}))
    return exporter, agents


def equivalent(exporter: Exporter) -> CollectorRegistry:
    """The exporter's event-fed families as prometheus-client metrics with the same values."""
    registry = CollectorRegistry(auto_describe=False)
    for standard in (process_collector.ProcessCollector, platform_collector.PlatformCollector,
                     gc_collector.GCCollector):
        standard(registry=registry)
    for family in exporter.store.families.values():
        if not family.series:
            continue
        labels = family.labelnames
        metric: Any
        if family.kind == "counter":
            metric = Counter(family.name, family.help, labels, registry=registry)
        elif family.kind == "gauge":
            metric = Gauge(family.name, family.help, labels, registry=registry)
        else:
            metric = Histogram(family.name, family.help, labels, registry=registry,
                               buckets=family.bounds)
        for series in family.series.values():
            child = metric.labels(*series.labels) if labels else metric
            if family.kind == "counter":
                child.inc(series.value)
            elif family.kind == "gauge":
                child.set(series.value)
            else:
                for bound, count in zip((*family.bounds, family.bounds[-1] * 2), series.counts):
                    for _ in range(count):
                        child.observe(bound)
    return registry


class Ingester(threading.Thread):
    """Applies task updates back to back; `max_gap` is the longest pause between two."""

    def __init__(self, exporter: Exporter, agents: list[str]) -> None:
        super().__init__(daemon=True)
        rand = random.Random(4)
        self.payloads = [orjson.dumps({"agent": rand.choice(agents), "status": "done",
                                       "duration_seconds": rand.lognormvariate(4.5, 1.0)})
                         for _ in range(1000)]
        self.dispatch = exporter.dispatcher.dispatch
        self.stop = threading.Event()
        self.max_gap = 0.0
        self.applied = 0

    def run(self) -> None:
        last = time.perf_counter()
        for payload in cycle(self.payloads):
            if self.stop.is_set():
                return
            self.dispatch(contract.TASKS, contract.TASKS, payload, True)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - last)
            self.applied += 1
            last = now

    def gap_during(self, work: Callable[[], object]) -> float:
        self.max_gap = 0.0
        work()
        applied = self.applied
        while self.applied == applied:  # the gap still open when `work` ended counts too
            time.sleep(0.0001)
        return self.max_gap


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def measure(series: int, runs: int) -> dict[str, float]:
    exporter, agents = fill(series)
    registry = equivalent(exporter)
    ours = lambda: exporter.render(False)  # noqa: E731
    theirs = lambda: prometheus_client.generate_latest(registry)  # noqa: E731
    body = ours()
    render = median([timed(ours) for _ in range(runs)])
    baseline = median([timed(theirs) for _ in range(runs)])
    ingester = Ingester(exporter, agents)
    ingester.start()
    stalls: dict[str, list[float]] = {"idle": [], "render": [], "generate_latest": []}
    for _ in range(runs):
        stalls["idle"].append(ingester.gap_during(lambda: time.sleep(max(render, 0.05))))
        stalls["render"].append(ingester.gap_during(ours))
        stalls["generate_latest"].append(ingester.gap_during(theirs))
    ingester.stop.set()
    ingester.join()
    return {"series": sample_lines(body.decode()),
            "baseline_series": sample_lines(theirs().decode()),
            "render": render, "generate_latest": baseline,
            "gzip": median([timed(lambda: gzip.compress(body, compresslevel=1))
                            for _ in range(runs)]),
            **{f"stall_{k}": median(v) for k, v in stalls.items()},
            "stall_render_worst": max(stalls["render"])}


def run(workdir: Path, quick: bool) -> Result:
    runs = 3 if quick else 7
    result = Result("render", f"/metrics render and ingestion stall, ms (median of {runs} runs)",
                    ["series", "exporter render", "generate_latest", "speed-up", "+ gzip",
                     "stall idle", "stall render", "stall generate_latest"])
    for size in SIZES:
        m = measure(size, runs)
        result.raw[str(size)] = m
        ms = {k: v * 1000 for k, v in m.items() if k not in ("series", "baseline_series")}
        result.rows.append([m["series"], ms["render"], ms["generate_latest"],
                            m["generate_latest"] / m["render"], ms["gzip"], ms["stall_idle"],
                            ms["stall_render"], ms["stall_generate_latest"]])
    top = result.raw[str(SIZES[-1])]
    result.targets += [
        Target(f"{SIZES[-1] // 1000} k series rendered in ≤ {RENDER_LIMIT_MS:.0f} ms",
               top["render"] * 1000, RENDER_LIMIT_MS, "ms"),
        Target(f"≥ {SPEEDUP:.0f}× faster than generate_latest",
               top["generate_latest"] / top["render"], SPEEDUP, "×", higher_is_better=True),
        Target(f"a scrape stalls ingestion ≤ {STALL_LIMIT_MS:.0f} ms (worst of {runs}, "
               f"{SIZES[-1] // 1000} k series)", top["stall_render_worst"] * 1000,
               STALL_LIMIT_MS, "ms"),
    ]
    result.notes.append("'+ gzip' is the gzip (level 1) the HTTP server adds when the scraper "
                        "accepts it, as Prometheus does. Stall columns: longest gap between two "
                        "events applied by an ingesting thread, while the main thread sleeps, "
                        "renders, or runs generate_latest.")
    return result
