"""7. How long a scrape waits while the exporter applies large batches.

A message may be a JSON array of events, up to `max_event_bytes` (64 KiB): 1 500 small task
updates fit in one. 600 such messages (900 000 events, each message 62 KB) are written at once
with pipelined PUBLISH, so that one read of the exporter brings hundreds of them. While the
exporter (a real subprocess, collectors off) applies them, a client scrapes /metrics every
0.1 s; every scrape's duration is recorded until agent_exporter_events_total reaches 900 000.
The baseline, beside it in the same run, is the same scrape of the same exporter once it is idle
again (the same series). The wait a batch adds to a scrape is the scrape's duration under load
minus the idle scrape's median.
"""
from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import orjson
import requests

from exporter import contract

from .common import (
    NO_COLLECTORS,
    PROMETHEUS_HEADERS,
    RawPublisher,
    Result,
    Target,
    command,
    events_total,
    median,
    percentile,
    start_exporter,
    start_redis,
    wait_until,
)

EVENTS_PER_MESSAGE = 1_500
MESSAGES = 600
IDLE_SCRAPES = 20
WAIT_LIMIT_MS = 50.0
SCRAPE_EVERY = 0.1  # seconds between one scrape's end and the next: many scrapes per burst
STATUSES = ("done", "failed")


def messages(count: int, seed: int = 5) -> list[bytes]:
    """`count` messages, each a JSON array of EVENTS_PER_MESSAGE task updates (about 62 KB)."""
    rand = random.Random(seed)
    agents = [f"agent-{i:05d}" for i in range(200)]
    out = []
    for _ in range(count):
        batch = [{"agent": rand.choice(agents), "status": rand.choice(STATUSES)}
                 for _ in range(EVENTS_PER_MESSAGE)]
        out.append(orjson.dumps(batch))
    assert max(map(len, out)) < 65_536, "a message must stay under max_event_bytes"
    return out


class Scraper(threading.Thread):
    """Scrapes every SCRAPE_EVERY seconds (as Prometheus asks: OpenMetrics, gzip) until stopped;
    keeps each scrape's duration and the events the exporter had applied by then."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.scrapes: list[tuple[float, float]] = []  # (seconds, events applied)

    def scrape(self) -> tuple[float, float]:
        start = time.perf_counter()
        # A connection per scrape: on a kept-alive one, a server that writes the body apart from
        # the headers without TCP_NODELAY (http.server's) waits 40 ms for the client's delayed
        # ACK, which would hide what is measured.
        response = requests.get(self.url + "/metrics", headers=PROMETHEUS_HEADERS, timeout=60)
        response.raise_for_status()
        return time.perf_counter() - start, events_total(response.text)

    def run(self) -> None:
        while not self.stop.wait(SCRAPE_EVERY):
            self.scrapes.append(self.scrape())


def measure(workdir: Path, transport: str, run: int, blob: bytes,
            total: int) -> dict[str, float]:
    redis = start_redis(workdir / f"redis-{transport}-{run}")
    exporter = start_exporter(workdir, redis.url, transport, *NO_COLLECTORS)
    try:
        scraper = Scraper(exporter.url)
        publisher = RawPublisher(redis.port)
        started = time.perf_counter()
        scraper.start()
        publisher.send(blob)
        publisher.close()
        wait_until(lambda: scraper.scrapes and scraper.scrapes[-1][1] >= total, timeout=300,
                   interval=0.05, message="the exporter to apply every batch")
        applied = time.perf_counter() - started
        scraper.stop.set()
        scraper.join()
        loaded = [seconds for seconds, events in scraper.scrapes if events < total]
        idle = [scraper.scrape()[0] for _ in range(IDLE_SCRAPES)]
        return {"scrapes": len(loaded), "worst": max(loaded), "p50": median(loaded),
                "p90": percentile(loaded, 90), "idle": median(idle), "idle_worst": max(idle),
                "events_per_second": total / applied}
    finally:
        exporter.stop()
        redis.stop()


def run(workdir: Path, quick: bool) -> Result:
    runs = 1 if quick else 3
    total = MESSAGES * EVENTS_PER_MESSAGE
    payloads = messages(MESSAGES)
    result = Result("batches", f"Scrape duration while {MESSAGES} messages of "
                               f"{EVENTS_PER_MESSAGE:,} events are applied, ms (median of {runs} "
                               f"runs)",
                    ["transport", "scrapes under load", "worst", "p90", "p50",
                     "idle scrape (baseline)", "worst / idle", "worst wait (worst − idle)",
                     "events/s applied"])
    result.raw = {"message_bytes": len(payloads[0])}
    for transport in ("pubsub", "streams"):
        blob = b"".join(command(transport, contract.TASKS, p) for p in payloads)
        measured = [measure(workdir, transport, i, blob, total) for i in range(runs)]
        m = {key: median([run[key] for run in measured]) for key in measured[0]}
        wait = (m["worst"] - m["idle"]) * 1000
        result.rows.append([transport, m["scrapes"], m["worst"] * 1000, m["p90"] * 1000,
                            m["p50"] * 1000, m["idle"] * 1000, m["worst"] / m["idle"], wait,
                            m["events_per_second"]])
        result.targets.append(Target(f"a scrape waits ≤ {WAIT_LIMIT_MS:.0f} ms for a batch "
                                     f"being applied ({transport}; worst scrape − idle scrape)",
                                     wait, WAIT_LIMIT_MS, "ms"))
        result.raw[transport] = measured
    result.notes.append(f"Each message (stream entry) is a JSON array of "
                        f"{EVENTS_PER_MESSAGE:,} task updates ({len(payloads[0]):,} bytes); all "
                        f"{MESSAGES} are written at once with pipelined PUBLISH or XADD. Scrapes "
                        "ask for OpenMetrics with gzip, as Prometheus does.")
    return result
