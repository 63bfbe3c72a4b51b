"""7. What waiting for a replica adds to a streams checkpoint: the checkpoint's transaction as
benchmark 6 runs it (MULTI, SET of a 200 kB state, XGROUP DELCONSUMER, EXEC) on a master with
one replica, then WAIT 1 (what the exporter adds when the master has replicas), against the
same transaction alone. Master and replica on loopback; before each checkpoint the
replica has caught up with the reads, so WAIT waits for the checkpoint's own replication.
"""
from __future__ import annotations

import time
from pathlib import Path

import redis

from tests.support.procs import RedisServer

from .checkpoint import checkpoint, fill, read_all
from .common import Result, median, percentile, start_redis, wait_until

CHECKPOINT_SECONDS = 5.0  # the exporter's default interval


def waited(client: redis.Redis) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of WAIT 1 after a checkpoint."""
    wall, cpu = time.perf_counter(), time.process_time()
    assert client.wait(1, 10_000) == 1
    return time.process_time() - cpu, time.perf_counter() - wall


def run(workdir: Path, quick: bool) -> Result:
    sizes, runs = ((10_000,), 10) if quick else ((10_000, 100_000), 30)
    result = Result("replication", f"A checkpoint on a master with one replica, ms (median and "
                                   f"p90 of {runs} runs)",
                    ["pending entries", "checkpoint", "CPU of the reader", "wall", "wall p90",
                     "share of a 5 s interval"])
    master = start_redis(workdir / "master")
    replica = RedisServer(workdir / "replica", ["--replicaof", "127.0.0.1",
                                                str(master.port)]).start()
    client = redis.Redis.from_url(master.url, protocol=2)
    client.set_response_callback("XREADGROUP", lambda response, **options: response)
    wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up",
               timeout=30, message="the replica in sync")
    try:
        for n in sizes:
            client.delete("s")
            fill(client, n)
            for wait in (False, True):
                name = "+ WAIT 1" if wait else "without WAIT"
                times = []
                for k in range(runs):
                    group = f"g{n}-{k}-{int(wait)}"
                    client.xgroup_create("s", group, id="0")
                    ids = read_all(client, group)
                    client.wait(1, 10_000)  # the replica has the reads: only the checkpoint left
                    cpu, wall = checkpoint(client, "XGROUP DELCONSUMER", group, ids)
                    if wait:
                        wait_cpu, wait_wall = waited(client)
                        cpu, wall = cpu + wait_cpu, wall + wait_wall
                    times.append((cpu, wall))
                walls = [w for _, w in times]
                result.rows.append([n, name, median([c for c, _ in times]) * 1000,
                                    median(walls) * 1000, percentile(walls, 90) * 1000,
                                    f"{median(walls) / CHECKPOINT_SECONDS:.3%}"])
                result.raw[f"{n}:{name}"] = times
    finally:
        client.close()
        replica.stop()
        master.stop()
    result.notes.append("The reader waits through the checkpoint's wall time (nothing is read "
                        "meanwhile); the WAIT itself costs it no CPU.")
    return result
