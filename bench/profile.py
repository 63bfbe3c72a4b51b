"""Where the exporter's time goes under a benchmark's load: py-spy samples the exporter
subprocess (on-CPU stacks only) and the functions with the largest shares are printed.

    .venv/bin/python -m bench.profile pubsub|streams|nominal [SECONDS] [--idle]

pubsub / streams: the ingest burst of benchmark 1, large enough to outlast the sampling
(collectors off; with --idle, shares of the reader thread's wall time); nominal: benchmark 4's
100 events/s with a scrape every 15 s (default collectors). The collapsed stacks are kept in
bench/results/profile-<scenario>.txt (flamegraph.pl or speedscope read them). --idle keeps the
samples of waiting threads too: where the wall time goes, not only the CPU time.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

from .common import (
    NO_COLLECTORS,
    PROMETHEUS_HEADERS,
    REPO,
    RESULTS,
    Mix,
    SteadyPublisher,
    command,
    scrape,
    start_exporter,
    start_redis,
)
from .ingest import burst

TOP = 15


def shares(collapsed: Path, only: str | None) -> tuple[Counter, Counter, Counter, int]:
    """Samples per thread, per function on top of the stack (self) and per function anywhere
    in it (inclusive); the function counts for thread `only`, or for all."""
    threads: Counter = Counter()
    own: Counter = Counter()
    inclusive: Counter = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        name, n = thread.split(" ")[-1].strip('"()'), int(count)
        threads[name] += n
        if frames and only in (None, name):
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    return threads, own, inclusive, sum(threads.values())


def record(pid: int, seconds: float, output: Path, idle: bool) -> subprocess.Popen:
    """py-spy sampling `pid` for `seconds` in the background."""
    return subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                             "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--format", "raw", "--function", "--threads", "--nonblocking",
                             *(["--idle"] if idle else []), "--output", str(output)],
                            stdout=subprocess.DEVNULL)


def main() -> None:
    idle = "--idle" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--idle"]
    scenario = args[0]
    seconds = float(args[1]) if len(args) > 1 else 20.0
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"profile-{scenario}.txt"
    redis = start_redis(workdir / "redis")
    transport = "streams" if scenario == "streams" else "pubsub"
    flags = () if scenario == "nominal" else NO_COLLECTORS
    exporter = start_exporter(workdir, redis.url, transport, *flags)
    try:
        if scenario == "nominal":
            publisher = SteadyPublisher(redis.port, "pubsub", 100, Mix())
            publisher.start()
            session = requests.Session()
            session.headers.update(PROMETHEUS_HEADERS)
            profiler = record(exporter.proc.pid, seconds, output, idle)
            while True:  # a scrape every 15 s, as Prometheus does
                scrape(exporter.url, session)
                try:
                    profiler.wait(15)
                    break
                except subprocess.TimeoutExpired:
                    continue
            publisher.stop.set()
        else:
            mix = Mix(sequenced=transport == "pubsub")
            blob = b"".join(command(transport, c, p)
                            for c, p in mix.messages(int(150_000 * seconds)))
            burst(redis.port, blob)
            time.sleep(1)  # past the start-up of the burst
            record(exporter.proc.pid, seconds, output, idle).wait()
    finally:
        exporter.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    only = transport if idle and scenario != "nominal" else None  # the reader's wall time
    threads, own, inclusive, total = shares(output, only)
    print(f"{total} samples of {scenario} over {seconds:.0f} s" + ("" if idle else
          f" ({100 * total / (seconds * 100):.0f} % of one core on CPU)"))
    print("\nthreads: " + ", ".join(f"{t} {100 * n / total:.0f} %"
                                  for t, n in threads.most_common()))
    base = threads[only] if only else total
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\n{title}{f' (thread {only})' if only else ''}:")
        for frame, n in counter.most_common(TOP):
            print(f"  {100 * n / base:5.1f} %  {frame}")
    print(f"\nstacks: {output.relative_to(REPO)}")


if __name__ == "__main__":
    main()
