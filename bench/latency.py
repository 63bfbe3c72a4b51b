"""2. Event → visible-in-/metrics latency at a steady 1 k and 10 k events/s.

While the mix flows at the rate, a probe (an agent status event whose taskCount is the probe's
number) is published every 50-150 ms and /metrics is scraped back to back until the probe's
value shows; latency = first scrape that shows it − publish time, so it includes up to one
scrape (its median time is reported). Back-to-back scrapes load the exporter, so the mix here
uses 20 agents (~1.5 k series, a few ms per scrape, no gzip) to keep the probe light. The
baseline is a receive-only client in its own process on the same Redis, seeing the same probes
in the same run.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import redis
import requests

from exporter import contract

from .common import (
    NO_COLLECTORS,
    Mix,
    Receiver,
    Result,
    SteadyPublisher,
    Target,
    median,
    percentile,
    probe_event,
    probe_line,
    start_exporter,
    start_redis,
)

RATES = (1_000, 10_000)
LIMIT_MS = 100.0
AGENTS = 20


def measure(workdir: Path, transport: str, rate: int, probes: int) -> dict[str, float]:
    redis_server = start_redis(workdir / f"redis-{transport}-{rate}")
    exporter = start_exporter(workdir, redis_server.url, transport, *NO_COLLECTORS)
    receiver = Receiver(redis_server.url, transport)
    publisher = SteadyPublisher(redis_server.port, transport, rate,
                                Mix(AGENTS, sequenced=transport == "pubsub"))
    client = redis.Redis.from_url(redis_server.url)
    session = requests.Session()
    session.headers["Accept-Encoding"] = "identity"
    try:
        publisher.start()
        time.sleep(1.0)  # steady state first
        sent: dict[int, float] = {}
        seen: list[float] = []
        scrapes: list[float] = []
        rand = random.Random(2)
        for k in range(1, probes + 1):
            time.sleep(rand.uniform(0.05, 0.15))
            line = probe_line(k)
            sent[k] = time.time()
            if transport == "pubsub":
                client.publish(contract.AGENTS, probe_event(k))
            else:
                client.xadd(contract.AGENTS, {"data": probe_event(k)})
            while True:
                before = time.time()
                text = session.get(exporter.url + "/metrics", timeout=10).text
                scrapes.append(time.time() - before)
                if line in text:
                    seen.append(time.time() - sent[k])
                    break
                if time.time() - sent[k] > 10:
                    raise RuntimeError(f"probe {k} not visible after 10 s")
        publisher.stop.set()
        publisher.join(10)
        receiver.stop()
        received = [float(t) - sent[int(k)] for _, k, t in
                    (line.split() for line in receiver.lines() if line.startswith("probe"))]
        return {"p50": percentile(seen, 50), "p99": percentile(seen, 99),
                "baseline_p50": percentile(received, 50),
                "baseline_p99": percentile(received, 99),
                "scrape": median(scrapes), "rate": publisher.achieved()}
    finally:
        publisher.stop.set()
        receiver.stop()
        client.close()
        exporter.stop()
        redis_server.stop()


def run(workdir: Path, quick: bool) -> Result:
    probes, runs = (40, 1) if quick else (100, 3)
    result = Result("latency", f"Event → /metrics latency, ms ({probes} probes per run, median "
                               f"of {runs} runs)",
                    ["transport", "events/s", "p50", "p99", "client p50", "client p99",
                     "p99 / client p99", "scrape"])
    for transport in ("pubsub", "streams"):
        for rate in RATES:
            runs_ = [measure(workdir, transport, rate, probes) for _ in range(runs)]
            m = {key: median([r[key] for r in runs_]) for key in runs_[0]}
            ms = {key: value * 1000 for key, value in m.items() if key != "rate"}
            result.rows.append([transport, m["rate"], ms["p50"], ms["p99"], ms["baseline_p50"],
                                ms["baseline_p99"], m["p99"] / m["baseline_p99"], ms["scrape"]])
            result.raw[f"{transport}@{rate}"] = runs_
            if rate == max(RATES):
                result.targets.append(Target(f"p99 event → /metrics < {LIMIT_MS:.0f} ms at "
                                             f"{rate // 1000} k events/s ({transport})",
                                             ms["p99"], LIMIT_MS, "ms"))
    result.notes.append("'scrape' is the median time of one /metrics request during the run: "
                        "the resolution of the measurement. 'client' is the receive-only "
                        "baseline (publish → received).")
    return result
