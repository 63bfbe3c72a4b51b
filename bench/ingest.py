"""1. Ingest throughput: events/s one exporter process applies, over pub/sub and from streams.

A burst of N pre-built events of the realistic mix is written with pipelined PUBLISH (or XADD)
on a raw socket. The exporter (a real subprocess, collectors off) is timed from the first
command sent until agent_exporter_events_total reaches N; /metrics is polled every 0.5 s and the
moment N was crossed is interpolated from the rate between the last two polls below N. The
baseline, alternated with it in the same run, is a receive-only redis-py client (the ceiling).
The exporter's CPU share over the run says whether it was CPU-bound or waiting on Redis.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from .common import (
    NO_COLLECTORS,
    Mix,
    RawPublisher,
    Receiver,
    Result,
    Target,
    command,
    events_total,
    median,
    scrape,
    start_exporter,
    start_redis,
)

POLL_SECONDS = 0.5
TARGETS = {"pubsub": 90_000, "streams": 150_000}


def crossing(polls: list[tuple[float, float, float]], n: int) -> float:
    """When the count reached n: between the last poll below n and the first at n, at the
    rate of the two polls before. A poll is (time, count, CPU seconds)."""
    k = next(i for i, (_, count, _) in enumerate(polls) if count >= n)
    if k < 2:
        return polls[k][0]
    (t1, c1, _), (t2, c2, _) = polls[k - 2], polls[k - 1]
    if c2 <= c1:
        return polls[k][0]
    return min(polls[k][0], t2 + (n - c2) * (t2 - t1) / (c2 - c1))


def burst(port: int, blob: bytes) -> float:
    """Send the pre-built commands on a thread; returns the wall time of the first byte."""
    publisher = RawPublisher(port)
    start = time.time()

    def send() -> None:
        publisher.send(blob)
        publisher.close()

    threading.Thread(target=send, daemon=True).start()
    return start


def poll_until(n: int, start: float, read: Callable[[], tuple[float, float]],
               cpu: float = 0.0) -> list[tuple[float, float, float]]:
    """Polls (time, count, CPU seconds) every POLL_SECONDS from `start` until `read` (count,
    CPU seconds) counts n events."""
    polls = [(start, 0.0, cpu)]
    deadline = time.time() + 180
    while polls[-1][1] < n:
        if time.time() > deadline:
            raise RuntimeError(f"{polls[-1][1]:.0f} of {n} events applied")
        time.sleep(POLL_SECONDS)
        before = time.time()
        count, cpu = read()
        polls.append(((before + time.time()) / 2, count, cpu))
    return polls


def exporter_rate(workdir: Path, transport: str, blob: bytes, n: int) -> tuple[float, float]:
    """Events/s, and the exporter's CPU share of one core while it was still applying."""
    redis = start_redis(workdir / f"redis-{transport}-exporter")
    exporter = start_exporter(workdir, redis.url, transport, *NO_COLLECTORS)
    process = psutil.Process(exporter.proc.pid)
    cpu_seconds = lambda: sum(process.cpu_times()[:2])  # noqa: E731
    try:
        cpu = cpu_seconds()
        start = burst(redis.port, blob)
        polls = poll_until(n, start, lambda: (events_total(scrape(exporter.url)), cpu_seconds()),
                           cpu)
        last = polls[-2]  # the last poll with events still to apply
        busy = (last[2] - cpu) / (last[0] - start) if last[0] > start else 0.0
        return n / (crossing(polls, n) - start), 100 * busy
    finally:
        exporter.stop()
        redis.stop()


def baseline_rate(workdir: Path, transport: str, blob: bytes, n: int) -> float:
    redis = start_redis(workdir / f"redis-{transport}-baseline")
    receiver = Receiver(redis.url, transport, n)
    try:
        start = burst(redis.port, blob)
        done = next(line for line in receiver.lines() if line.startswith("done"))
        return n / (float(done.split()[1]) - start)
    finally:
        receiver.stop()
        redis.stop()


def run(workdir: Path, quick: bool) -> Result:
    n, runs = (100_000, 3) if quick else (400_000, 5)
    result = Result("ingest", f"Ingest throughput, events/s per process ({n:,} events, "
                              f"median of {runs} runs)",
                    ["transport", "exporter events/s", "its runs, min–max",
                     "receive-only client events/s", "exporter / client (per run)",
                     "target events/s", "exporter CPU % of a core"])
    result.notes.append("Burst written with pipelined PUBLISH/XADD on a raw socket; the "
                        "benchmark's redis-server runs with client-output-buffer-limit "
                        "'pubsub 0 0 0', so no subscriber is cut off while the burst queues.")
    for transport in ("pubsub", "streams"):
        mix = Mix(sequenced=transport == "pubsub")
        blob = b"".join(command(transport, c, p) for c, p in mix.messages(n))
        ours, theirs, busy = [], [], []
        for _ in range(runs):  # alternated, so both see the same background load
            theirs.append(baseline_rate(workdir, transport, blob, n))
            rate, cpu = exporter_rate(workdir, transport, blob, n)
            ours.append(rate)
            busy.append(cpu)
        rate, ceiling = median(ours), median(theirs)
        paired = median([o / t for o, t in zip(ours, theirs)])  # each run against its neighbour
        result.rows.append([transport, rate, f"{min(ours):,.0f}–{max(ours):,.0f}", ceiling,
                            paired, TARGETS[transport], median(busy)])
        result.targets.append(Target(f"ingest ≥ {TARGETS[transport] // 1000} k events/s from "
                                     f"{transport}", rate, TARGETS[transport], "events/s",
                                     higher_is_better=True))
        result.raw[transport] = {"exporter": ours, "baseline": theirs, "exporter_cpu": busy,
                                 "events": n}
    return result
