"""4. CPU share of one core and RSS at the nominal load (100 events/s of the mix, a scrape every
15 s the way Prometheus scrapes: OpenMetrics, gzip) and the same with 100 k series held.

The exporter runs as a real subprocess with its default collectors (host, redis_state; gpu finds
no GPU here). Its CPU time is read from /proc (psutil) over 15 s windows that each start with a
scrape; the median window is reported. RSS is sampled every second (the maximum is reported).
The baseline is a receive-only client in its own process, subscribed to the same channels in the
same windows.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import requests

from exporter import contract

from .common import (
    PROMETHEUS_HEADERS,
    Mix,
    RawPublisher,
    Receiver,
    Result,
    SteadyPublisher,
    Target,
    agent_names,
    command,
    events_total,
    median,
    sample_lines,
    scrape,
    start_exporter,
    start_redis,
    wait_until,
)

RATE = 100
SCRAPE_SECONDS = 15.0
CPU_LIMIT = 2.0  # % of one core
RSS_LIMIT_MB = 300.0
SERIES_PER_AGENT = 42  # agent gauges (6) + done/failed task counters and histograms (2 × 18)


def fill(port: int, url: str, series: int) -> int:
    """Publish events that create about `series` series; returns the samples then exposed."""
    events = []
    for agent in agent_names(round(series / SERIES_PER_AGENT)):
        events.append((contract.AGENTS, {"agentType": agent, "status": "idle", "taskCount": 0,
                                         "queueDepth": 1, "load": 0.5}))
        events += [(contract.TASKS, {"agent": agent, "status": status, "duration_seconds": 90.5})
                   for status in ("done", "failed")]
    before = events_total(scrape(url))
    publisher = RawPublisher(port)
    publisher.send(b"".join(command("pubsub", c, orjson.dumps(e)) for c, e in events))
    publisher.close()
    wait_until(lambda: events_total(scrape(url)) >= before + len(events), timeout=120,
               interval=1, message="the exporter to apply the fill events")
    return sample_lines(scrape(url))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure(workdir: Path, series: int, seconds: float) -> dict[str, float]:
    redis = start_redis(workdir / f"redis-{series}")
    exporter = start_exporter(workdir, redis.url, "pubsub")
    receiver = Receiver(redis.url, "pubsub")
    publisher = SteadyPublisher(redis.port, "pubsub", RATE, Mix())
    try:
        held = fill(redis.port, exporter.url, series) if series else 0
        publisher.start()
        time.sleep(2)  # steady state
        ours, theirs = psutil.Process(exporter.proc.pid), psutil.Process(receiver.pid)
        session = requests.Session()
        session.headers.update(PROMETHEUS_HEADERS)
        shares: list[tuple[float, float]] = []
        rss: list[float] = []
        for _ in range(round(seconds / SCRAPE_SECONDS)):  # one window per scrape interval
            start, cpu = time.monotonic(), (cpu_seconds(ours), cpu_seconds(theirs))
            scrape(exporter.url, session)
            while time.monotonic() - start < SCRAPE_SECONDS:
                rss.append(ours.memory_info().rss / 2**20)
                time.sleep(1)
            elapsed = time.monotonic() - start
            shares.append((100 * (cpu_seconds(ours) - cpu[0]) / elapsed,
                           100 * (cpu_seconds(theirs) - cpu[1]) / elapsed))
        out: dict[str, Any] = {"series": held or sample_lines(scrape(exporter.url)),
                "cpu": median([s[0] for s in shares]),
                "baseline_cpu": median([s[1] for s in shares]),
                "rss_mb": max(rss), "baseline_rss_mb": theirs.memory_info().rss / 2**20,
                "windows": shares}
        return out
    finally:
        publisher.stop.set()
        publisher.join(10)
        receiver.stop()
        exporter.stop()
        redis.stop()


def run(workdir: Path, quick: bool) -> Result:
    seconds = 30.0 if quick else 60.0
    windows = round(seconds / SCRAPE_SECONDS)
    result = Result("resources", f"CPU and memory at {RATE} events/s, a scrape every "
                                 f"{SCRAPE_SECONDS:.0f} s (median of {windows} windows of "
                                 f"{SCRAPE_SECONDS:.0f} s)",
                    ["series held", "exporter CPU % of a core", "client CPU %",
                     "exporter / client", "exporter CPU µs per event", "exporter max RSS MB",
                     "client RSS MB"])
    for series in (0, 100_000):
        m = measure(workdir, series, seconds)
        result.raw[str(series)] = m
        result.rows.append([m["series"], m["cpu"], m["baseline_cpu"],
                            m["cpu"] / m["baseline_cpu"], m["cpu"] / 100 / RATE * 1e6,
                            m["rss_mb"], m["baseline_rss_mb"]])
    nominal, big = result.raw["0"], result.raw["100000"]
    result.targets += [
        Target(f"≤ {CPU_LIMIT:.0f} % of one core at the nominal load", nominal["cpu"],
               CPU_LIMIT, "% of a core"),
        Target(f"RSS ≤ {RSS_LIMIT_MB:.0f} MB at 100 k series", big["rss_mb"], RSS_LIMIT_MB, "MB"),
    ]
    result.notes.append("The first row holds only the series the mix creates (200 agents). "
                        "CPU times come from /proc in 10 ms ticks: ±0.07 % of a core per "
                        "15 s window. 'µs per event' charges everything (scrapes, collectors, "
                        "timers) to the events.")
    return result
