"""Chaos: Redis killed, hung, restarted with and without its data, the exporter's permissions
revoked, streams deleted or turned into strings, consumer groups destroyed, connections dropped,
and bad events (garbage JSON, a channel or stream key that is not UTF-8), at random,
while a publisher publishes and a scraper scrapes, for both source modes.

What must hold: the exporter never exits; every scrape parses (Prometheus text and OpenMetrics);
`agent_exporter_redis_up` is never 1 while a source is down; after each fault every source reads
again (source_up 1, a read after the fault) within 30 s of Redis being back; a hung Redis is
reported within 15 s; and once the dust settles, streams counters equal what the stream holds
for the data that survived (and never exceed what was published for the data that did not).

The run is seeded: CHAOS_SEED picks the faults, their order and their lengths (printed, with
the recovery and detection times measured); CHAOS_SECONDS bounds the random part of each run;
CHAOS_REPORT names a file the measured times are appended to (one JSON line per run).
"""
from __future__ import annotations

import os
import shutil
import signal
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.support.procs import NO_COLLECTORS, Exporter, RedisServer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = int(os.environ.get("CHAOS_SEED", "20240611"))
SECONDS = float(os.environ.get("CHAOS_SECONDS", "60"))
BACK_WITHIN = 30.0  # seconds from Redis being back to every source reading again
DETECT_HUNG_WITHIN = 15.0
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
TASKS = "events:tasks:updates"
ODD_CHANNEL = b"events:errors:\xff\xfe"
USER = ["--user", "exporter", "on", ">pw", "~*", "&*", "+@all"]
AOF = ["--appendonly", "yes", "--appendfsync", "always"]  # "with data": every reply persisted
CONFIGS = {
    "pubsub": "source: pubsub\n",
    "streams": "source: streams\nconsumer: chaos\nstreams:\n  checkpoint_seconds: 1\n"
               "  block_ms: 200\n",
}
# What the exporter's user loses in an ACL fault: revoking channels disconnects subscribers.
REVOKE = {"pubsub": ("resetchannels",), "streams": ("-xreadgroup",)}
RESTORE = {"pubsub": ("allchannels",), "streams": ("+xreadgroup",)}
WIPES = ("restart without data", "stream deleted", "stream key turned into a string")


class Scraper(threading.Thread):
    """Scrapes /metrics in both formats until stopped; every scrape must parse, and redis_up
    must never be 1 while a source is down."""

    def __init__(self, exporter: Exporter) -> None:
        super().__init__(name="scraper", daemon=True)
        self.exporter = exporter
        self.stop = threading.Event()
        self.scrapes = 0
        self.problems: list[str] = []

    def run(self) -> None:
        openmetrics = False
        while not self.stop.wait(0.1):
            openmetrics = not openmetrics
            try:
                response = requests.get(self.exporter.url + "/metrics", timeout=10,
                                        headers={"Accept": OPENMETRICS} if openmetrics else {})
                parse = parse_openmetrics if openmetrics else parse_text
                samples = [s for family in parse(response.text) for s in family.samples]
            except Exception as exc:
                self.problems.append(f"{'openmetrics' if openmetrics else 'text'} scrape: {exc!r}")
                continue
            self.scrapes += 1
            redis_up = [s.value for s in samples if s.name == "agent_exporter_redis_up"]
            sources_up = [s.value for s in samples if s.name == "agent_exporter_source_up"]
            if redis_up == [1] and not all(sources_up):
                self.problems.append(f"redis_up 1 while source_up is {sources_up}")


class Publisher(threading.Thread):
    """Task events at ~200/s, tagged with the data epoch (a fault that loses the data starts a
    new one), plus bad events: garbage JSON and a channel or stream key that is not UTF-8."""

    def __init__(self, url: str, mode: str) -> None:
        super().__init__(name="publisher", daemon=True)
        self.url, self.mode = url, mode
        self.stop = threading.Event()
        self.lock = threading.Lock()  # held while publishing; faults that lose data take it
        self.epoch = 0
        self.attempted: Counter[int] = Counter()

    def run(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        rounds = 0
        while not self.stop.wait(0.05):
            rounds += 1
            with self.lock:
                events = [orjson.dumps({"agent": f"e{self.epoch}", "status": "done"})] * 10
                if rounds % 20 == 0:
                    events.append(b"{garbage")
                self.attempted[self.epoch] += 10  # sent or not: the stream is the truth
                try:
                    pipe = client.pipeline(transaction=False)
                    for event in events:
                        self._send(pipe, TASKS, event)
                    if rounds % 20 == 0:
                        self._send(pipe, ODD_CHANNEL, orjson.dumps({"component": "odd"}))
                    pipe.execute()
                except redis.RedisError:
                    pass  # Redis is down, hung, or the key is not a stream: the chaos

    def _send(self, pipe: redis.client.Pipeline, name: str | bytes, event: bytes) -> None:
        if self.mode == "streams":
            pipe.xadd(name, {"data": event})
        else:
            pipe.publish(name, event)


class Chaos:
    """One run: Redis, the exporter, the publisher, the scraper, and the faults."""

    def __init__(self, workdir: Path, mode: str, seed: int) -> None:
        import random

        self.mode = mode
        self.rng = random.Random(f"{seed}-{mode}")
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis", extra=AOF + USER).start()
        self.admin = self.redis.client(socket_timeout=5)
        self.url = f"redis://exporter:pw@127.0.0.1:{self.redis.port}/0"
        self.exporter = Exporter(workdir, self.url, NO_COLLECTORS,
                                 config=CONFIGS[mode]).wait_ready(timeout=30)
        self.publisher = Publisher(self.redis.url, mode)
        self.scraper = Scraper(self.exporter)
        self.recoveries: dict[str, list[float]] = defaultdict(list)
        self.detections: list[float] = []
        self.faults: dict[str, Callable[[], float]] = {
            "kill, restart with data": self.kill_restart,
            "SIGSTOP, SIGCONT": self.hang,
            "restart with data": self.restart,
            "restart without data": self.restart_empty,
            "ACL permission revoked": self.revoke,
            "connections killed": self.kill_connections,
        }
        if mode == "streams":
            self.faults["stream deleted"] = self.delete_stream
            self.faults["stream key turned into a string"] = self.wrong_type
            self.faults["consumer group destroyed"] = self.destroy_group

    # -- the faults: each returns when Redis is back (time.monotonic()) ----------------------

    def kill_restart(self) -> float:
        self.redis.kill()
        self._pause(0.2, 2)
        self.redis.start()
        return time.monotonic()

    def hang(self) -> float:
        assert self.redis.proc is not None
        self.redis.proc.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            wait_until(self._everything_down, timeout=DETECT_HUNG_WITHIN, interval=0.1,
                       message="a hung Redis reported (redis_up 0, every source_up 0)")
            self.detections.append(time.monotonic() - stopped)
            self._pause(0, 5)
        finally:
            self.redis.proc.signal(signal.SIGCONT)
        return time.monotonic()

    def restart(self) -> float:
        self.redis.stop()
        self.redis.start()
        return time.monotonic()

    def restart_empty(self) -> float:
        with self.publisher.lock:
            self.redis.kill()
            shutil.rmtree(self.redis.workdir / "appendonlydir", ignore_errors=True)
            self.redis.start()
            self.publisher.epoch += 1
        return time.monotonic()

    def revoke(self) -> float:
        self.admin.execute_command("ACL", "SETUSER", "exporter", *REVOKE[self.mode])
        try:
            wait_until(lambda: not self._reading_since(0), timeout=15, interval=0.1,
                       message="a source without its permission reported down")
            self._pause(1, 4)
        finally:
            self.admin.execute_command("ACL", "SETUSER", "exporter", *RESTORE[self.mode])
        return time.monotonic()

    def kill_connections(self) -> float:
        self.admin.client_kill_filter(_type="normal", skipme=True)
        self.admin.client_kill_filter(_type="pubsub", skipme=True)
        return time.monotonic()

    def delete_stream(self) -> float:
        with self.publisher.lock:
            self.admin.delete(TASKS)
            self.publisher.epoch += 1
        return time.monotonic()

    def destroy_group(self) -> float:
        self.admin.xgroup_destroy(TASKS, "agent-exporter")  # the entries stay
        return time.monotonic()

    def wrong_type(self) -> float:
        with self.publisher.lock:
            self.admin.delete(TASKS)
            self.admin.set(TASKS, "not a stream")
            self.publisher.epoch += 1
        self._pause(1, 3)
        self.admin.delete(TASKS)
        return time.monotonic()

    # -- observation --------------------------------------------------------------------------

    def _pause(self, low: float, high: float) -> None:
        """Lets a fault last a random while (not a synchronisation: nothing waits on it)."""
        self.publisher.stop.wait(self.rng.uniform(low, high))

    def _samples(self) -> list:
        text = requests.get(self.exporter.url + "/metrics", timeout=10).text
        return [s for family in parse_text(text) for s in family.samples]

    def _everything_down(self) -> bool:
        samples = self._samples()
        up = [s.value for s in samples if s.name == "agent_exporter_source_up"]
        redis_up = [s.value for s in samples if s.name == "agent_exporter_redis_up"]
        return redis_up == [0] and up == [0] * len(up)

    def _reading_since(self, wall: float) -> bool:
        """Every source up, with a read that returned after `wall` (epoch seconds)."""
        samples = self._samples()
        up = {s.labels["source"]: s.value for s in samples if s.name == "agent_exporter_source_up"}
        last = {s.labels["source"]: s.value for s in samples
                if s.name == "agent_exporter_source_last_read_timestamp_seconds"}
        return bool(up) and all(up.values()) and min(last.values()) > wall

    def schedule(self) -> list[str]:
        """Every kind once, in random order, then random kinds while time is left; the data of
        the last epoch then goes through two faults that keep the data."""
        kinds = list(self.faults)
        self.rng.shuffle(kinds)
        return kinds

    def run(self) -> None:
        deadline = time.monotonic() + SECONDS
        keeps_data = [k for k in self.faults if k not in WIPES]
        self.publisher.start()
        self.scraper.start()
        kinds = self.schedule()
        while kinds:
            self.inject(kinds.pop(0))
            if not kinds and time.monotonic() < deadline:
                kinds.append(self.rng.choice(list(self.faults)))
        for _ in range(2):
            self.inject(self.rng.choice(keeps_data))
        self.publisher.stop.set()
        self.publisher.join(10)

    def inject(self, kind: str) -> None:
        back = self.faults[kind]()
        back_wall = time.time() - (time.monotonic() - back)
        assert self.exporter.proc.alive(), f"the exporter exited on {kind}"
        wait_until(lambda: self._reading_since(back_wall), timeout=BACK_WITHIN, interval=0.1,
                   message=f"every source reading again after {kind}")
        self.recoveries[kind].append(time.monotonic() - back)
        self._pause(0.5, 2)

    def settle_and_check_counts(self) -> None:
        final = self.publisher.epoch
        if self.mode == "streams":
            def in_stream(epoch: int) -> int:
                entries = self.admin.xrange(TASKS)
                return sum(1 for _, fields in entries
                           if fields[b"data"].startswith(b'{"agent":"e%d"' % epoch))

            def counted(epoch: int) -> float:
                return sum(s.value for s in self._samples() if s.name == "agent_tasks_total"
                           and s.labels["agent"] == f"e{epoch}")

            expected = in_stream(final)
            wait_until(lambda: counted(final) == expected, timeout=60, interval=0.5,
                       message=f"the surviving stream counted exactly ({expected} entries)")
            assert expected > 0
        for epoch, attempted in self.publisher.attempted.items():
            seen = sum(s.value for s in self._samples() if s.name == "agent_tasks_total"
                       and s.labels["agent"] == f"e{epoch}")
            assert seen <= attempted, f"epoch {epoch}: {seen} counted, {attempted} published"
        assert any(s.name == "agent_tasks_total" and s.labels["agent"] == f"e{final}"
                   for s in self._samples()), "events of the last epoch counted"

    def close(self) -> None:
        self.publisher.stop.set()
        self.scraper.stop.set()
        if self.redis.proc is not None:
            self.redis.proc.signal(signal.SIGCONT)
        self.exporter.stop()
        self.redis.stop()

    def report(self) -> str:
        lines = [f"chaos {self.mode} (CHAOS_SEED={SEED}): {self.scraper.scrapes} scrapes parsed, "
                 f"{sum(self.publisher.attempted.values())} events published, "
                 f"{self.publisher.epoch + 1} data epochs"]
        for kind, times in sorted(self.recoveries.items()):
            lines.append(f"  {kind:32} x{len(times)}  back reading after: median "
                         f"{statistics.median(times):5.2f} s, worst {max(times):5.2f} s")
        if self.detections:
            lines.append(f"  hung Redis reported after: median {statistics.median(self.detections):.2f}"
                         f" s, worst {max(self.detections):.2f} s ({len(self.detections)} hangs)")
        return "\n".join(lines)


@pytest.mark.parametrize("mode", ["pubsub", "streams"])
def test_chaos(mode, tmp_path):
    print(f"\nCHAOS_SEED={SEED} CHAOS_SECONDS={SECONDS:g}")
    chaos = Chaos(tmp_path, mode, SEED)
    try:
        chaos.run()
        chaos.settle_and_check_counts()
        chaos.scraper.stop.set()
        chaos.scraper.join(15)
        assert chaos.exporter.proc.alive()
        assert not chaos.scraper.problems, "\n".join(chaos.scraper.problems[:20])
        assert chaos.scraper.scrapes > 0
    finally:
        print(chaos.report())
        if os.environ.get("CHAOS_REPORT"):
            with open(os.environ["CHAOS_REPORT"], "ab") as report:
                report.write(orjson.dumps({"mode": mode, "seed": SEED,
                                           "recoveries": chaos.recoveries,
                                           "detections": chaos.detections}) + b"\n")
        chaos.close()
