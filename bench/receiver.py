"""The baseline: a redis-py client that only receives the exporter's channels or streams.

    python -m bench.receiver pubsub|streams REDIS_URL COUNT

Prints "ready" once subscribed (or its group exists), then, for every probe event seen,
"probe K WALLTIME", and once COUNT messages have arrived (0: never) "done WALLTIME". Pub/sub
replies are read straight off the connection, as the exporter does; streams are read with
XREADGROUP in batches of 500, as the exporter does, without acknowledging.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import orjson
import redis

from exporter.contract import DEFAULT_CHANNELS, is_pattern

BATCH = 500
PROBE = "__probe__"  # the agent name of latency probes (bench/latency.py)
MARK = PROBE.encode()


def seen(payload: bytes) -> None:
    if MARK in payload:
        print("probe", orjson.loads(payload)["taskCount"], time.time(), flush=True)


def pubsub(client: redis.Redis, count: int) -> None:
    ps = client.pubsub()
    names = list(DEFAULT_CHANNELS)
    ps.subscribe(*[n for n in names if not is_pattern(n)])
    ps.psubscribe(*[n for n in names if is_pattern(n)])
    connection = ps.connection
    for _ in names:
        connection.read_response(push_request=True, timeout=5)
    print("ready", flush=True)
    received = 0
    while not count or received < count:
        reply = connection.read_response(push_request=True)
        if reply[0] == b"message":
            received += 1
            seen(reply[2])
    print("done", time.time(), flush=True)


def streams(client: redis.Redis, count: int) -> None:
    keys = [n for n in DEFAULT_CHANNELS if not is_pattern(n)]
    for key in keys:
        client.xgroup_create(key, "bench", id="0", mkstream=True)
    print("ready", flush=True)
    received = 0
    cursors: dict[Any, Any] = {key: ">" for key in keys}
    while not count or received < count:
        reply: Any = client.xreadgroup("bench", "baseline", cursors, count=BATCH, block=1000)
        for _, entries in reply or ():
            received += len(entries)
            for _, fields in entries:
                seen(fields[b"data"])
    print("done", time.time(), flush=True)


def main() -> None:
    transport, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = redis.Redis.from_url(url, socket_timeout=None)
    {"pubsub": pubsub, "streams": streams}[transport](client, count)


if __name__ == "__main__":
    main()
