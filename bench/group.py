"""8. Several exporters in one stream consumer group: the events/s the group applies with 1, 2
and 3 exporter processes, each its own consumer.

The exporters start idle; a burst of N stream entries of the realistic mix is then written
(pipelined XADD on a raw socket, as in benchmark 1) and the group is timed until the sum of the
exporters' agent_exporter_events_total reaches N. What more processes can add is bounded by
the cores left beside Redis and the publisher: on the 2-core development VM, little.
"""
from __future__ import annotations

import os
from pathlib import Path

from .common import (
    NO_COLLECTORS,
    Mix,
    Result,
    command,
    events_total,
    median,
    scrape,
    start_exporter,
    start_redis,
)
from .ingest import burst, crossing, poll_until

SIZES = (1, 2, 3)
CONFIG = "streams:\n  batch: 500\n"


def group_rate(workdir: Path, blob: bytes, n: int, size: int) -> tuple[float, list[float]]:
    """Events/s of a group of `size` exporters, and each one's share of the events."""
    redis = start_redis(workdir / f"redis-group-{size}")
    exporters = [start_exporter(workdir, redis.url, "streams", *NO_COLLECTORS, "--consumer",
                                f"c{k}", config=CONFIG) for k in range(size)]
    try:
        start = burst(redis.port, blob)
        polls = poll_until(n, start, lambda: (sum(events_total(scrape(e.url))
                                                  for e in exporters), 0.0))
        shares = [events_total(scrape(e.url)) / n for e in exporters]
        return n / (crossing(polls, n) - start), shares
    finally:
        for exporter in exporters:
            exporter.stop()
        redis.stop()


def run(workdir: Path, quick: bool) -> Result:
    n, runs = (100_000, 1) if quick else (300_000, 3)
    result = Result("group", f"One consumer group, events/s of the whole group ({n:,} entries, "
                             f"median of {runs} runs)",
                    ["exporters", "events/s", "its runs, min–max", "vs one exporter",
                     "largest share of one exporter"])
    mix = Mix(sequenced=False)
    blob = b"".join(command("streams", c, p) for c, p in mix.messages(n))
    single = 0.0
    for size in SIZES:
        rates, shares = [], []
        for _ in range(runs):
            rate, share = group_rate(workdir, blob, n, size)
            rates.append(rate)
            shares.append(max(share))
        rate = median(rates)
        single = single or rate
        result.rows.append([size, rate, f"{min(rates):,.0f}–{max(rates):,.0f}", rate / single,
                            median(shares)])
        result.raw[str(size)] = {"rates": rates, "largest_share": shares}
    result.notes.append(f"{os.cpu_count()} cores for Redis, the publisher and the exporters.")
    return result
