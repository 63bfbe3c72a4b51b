"""6. What a streams checkpoint costs to acknowledge what it covers: XACK naming every pending id
(the baseline: how checkpoints acknowledged before) against XGROUP DELCONSUMER (what the
exporter does now).

Each method gets its own consumer group on one stream; the consumer reads every entry (raw
replies, as the exporter reads), then the checkpoint's transaction runs as the exporter runs it:
MULTI, SET of a 200 kB state, the acknowledgement, EXEC. Measured: the CPU the calling process
spends on it (what the reader thread loses) and the wall time until EXEC answers.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from .common import Result, median, start_redis

STATE = b"x" * 200_000  # about the checkpoint of the benchmark's 200-agent mix
METHODS: dict[str, Callable[[redis.client.Pipeline, str, list[bytes]], object]] = {
    "XACK of every id": lambda pipe, group, ids: pipe.xack("s", group, *ids),
    "XGROUP DELCONSUMER": lambda pipe, group, ids: pipe.xgroup_delconsumer("s", group, "c"),
}


def fill(client: redis.Redis, n: int) -> None:
    for start in range(0, n, 10_000):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(10_000, n - start)):
            pipe.xadd("s", {"data": b"x" * 120})
        pipe.execute()


def read_all(client: redis.Redis, group: str) -> list[bytes]:
    """Deliver every entry to consumer c of `group`; their ids."""
    ids: list[bytes] = []
    while True:
        reply: Any = client.xreadgroup(group, "c", {"s": ">"}, count=10_000)
        if not reply:
            return ids
        ids += [entry[0] for entry in reply[0][1]]


def checkpoint(client: redis.Redis, method: str, group: str, ids: list[bytes]) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of one checkpoint transaction."""
    wall, cpu = time.perf_counter(), time.process_time()
    pipe = client.pipeline(transaction=True)
    pipe.set("checkpoint", STATE)
    METHODS[method](pipe, group, ids)
    _, acknowledged = pipe.execute()
    assert acknowledged == len(ids), (method, acknowledged, len(ids))
    return time.process_time() - cpu, time.perf_counter() - wall


def run(workdir: Path, quick: bool) -> Result:
    sizes, runs = ((100_000,), 1) if quick else ((100_000, 500_000), 3)
    result = Result("checkpoint", f"Acknowledging a checkpoint's pending entries, ms (median of "
                                  f"{runs} runs)",
                    ["pending entries", "method", "CPU of the reader", "wall", "CPU / XACK's"])
    server = start_redis(workdir / "redis")
    client = redis.Redis.from_url(server.url, protocol=2)
    client.set_response_callback("XREADGROUP", lambda response, **options: response)
    try:
        for n in sizes:
            client.delete("s")
            fill(client, n)
            times: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
            for k in range(runs):
                for i, method in enumerate(METHODS):
                    group = f"g{n}-{k}-{i}"
                    client.xgroup_create("s", group, id="0")
                    times[method].append(checkpoint(client, method, group, read_all(client, group)))
            baseline = median([cpu for cpu, _ in times["XACK of every id"]])
            for method, measured in times.items():
                cpu = median([c for c, _ in measured])
                result.rows.append([n, method, cpu * 1000, median([w for _, w in measured]) * 1000,
                                    cpu / baseline])
                result.raw[f"{n}:{method}"] = measured
    finally:
        client.close()
        server.stop()
    result.notes.append("500 000 pending entries is one 5 s checkpoint at 100 k entries/s.")
    return result
