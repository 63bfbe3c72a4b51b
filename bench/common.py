"""Shared parts of the benchmarks: the machine and versions, statistics, the event mix, raw RESP
publishing, and the exporter / Redis / baseline-receiver processes (tests/procs.py's helpers).
"""
from __future__ import annotations

import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import hiredis
import orjson
import redis
import requests

from exporter import __version__, contract
from tests.support.procs import Exporter, Proc, RedisServer, free_port, wait_until

from .receiver import PROBE

REPO = Path(__file__).resolve().parent.parent

__all__ = ["Proc", "free_port", "wait_until"]  # re-exported for the benchmark modules

RESULTS = REPO / "bench" / "results"
NO_COLLECTORS = ("--no-collector.host", "--no-collector.gpu", "--no-collector.redis_state")
# What Prometheus sends: OpenMetrics preferred, gzip.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "Accept-Encoding": "gzip",
}


# -- reporting ------------------------------------------------------------------------------------

@dataclass
class Target:
    text: str  # the wording
    value: float
    limit: float
    unit: str
    higher_is_better: bool = False

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.text, "value": self.value, "limit": self.limit, "unit": self.unit,
                "met": self.met}


@dataclass
class Result:
    """One benchmark's table (medians, baseline and ratio side by side) and its targets."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # every run's numbers

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "columns": self.columns,
                "rows": self.rows, "targets": [t.as_dict() for t in self.targets],
                "notes": self.notes, "raw": self.raw}


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, so the same text goes to the terminal and to docs/performance.md."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (0-100)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- the machine ----------------------------------------------------------------------------------

def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (out.stdout or out.stderr).splitlines()[0].strip()


def environment() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text()
    mem_total = re.search(r"^MemTotal:\s+(\d+)", meminfo, re.M)
    mem_kb = int(mem_total.group(1)) if mem_total else 0
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "exporter"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "git": f"{commit}{' + uncommitted exporter/ changes' if dirty else ''}",
        "machine": {"cpu": model.group(1) if model else platform.processor(),
                    "cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
                    "kernel": platform.release()},
        "versions": {"python": platform.python_version(), "agent-exporter": __version__,
                     "redis-server": _first_line(["redis-server", "--version"]),
                     "prometheus": _first_line(["prometheus", "--version"]),
                     "promtool": _first_line(["promtool", "--version"]),
                     "prometheus-client": version("prometheus-client"),
                     "redis-py": redis.__version__, "hiredis": hiredis.__version__,
                     "orjson": orjson.__version__},
        "load_average_start": os.getloadavg(),
    }


# -- events ---------------------------------------------------------------------------------------

STATUSES = ("done", "done", "done", "done", "done", "done", "failed", "running")
RAG_SOURCES = ("docs", "code", "tickets", "web")
WORKFLOWS = {"ingest": ("fetch", "parse", "embed"), "review": ("plan", "check", "report")}


def agent_names(n: int) -> list[str]:
    return [f"agent-{i:04d}" for i in range(n)]


class Mix:
    """A realistic mix of typed events with labels: 60 % task updates (agent × status, with
    durations), 20 % agent status, 15 % RAG queries, 5 % workflow steps. Pub/sub payloads carry
    the publisher's `_pub`/`_seq` like exporter.publisher does; stream entries do not."""

    def __init__(self, agents: int = 200, sequenced: bool = True, seed: int = 1) -> None:
        self.agents = agent_names(agents)
        self.sequenced = sequenced
        self.random = random.Random(seed)
        self.seq: dict[str, int] = {}

    def event(self) -> tuple[str, dict[str, Any]]:
        r = self.random
        pick = r.random()
        agent = r.choice(self.agents)
        if pick < 0.60:
            status = r.choice(STATUSES)
            event: dict[str, Any] = {"taskId": f"t-{r.getrandbits(40):x}", "agent": agent,
                                     "status": status}
            if status != "running":
                event["duration_seconds"] = round(r.lognormvariate(4.5, 1.0), 3)
            return contract.TASKS, event
        if pick < 0.80:
            tasks = r.randint(0, 5)
            return contract.AGENTS, {"agentType": agent, "status": "busy" if tasks else "idle",
                                     "taskCount": tasks, "queueDepth": r.randint(0, 20),
                                     "load": round(r.random(), 3)}
        if pick < 0.95:
            return contract.RAG, {"duration_seconds": round(r.lognormvariate(-1.5, 0.8), 4),
                                  "success": r.random() > 0.02, "cache_hit": r.random() < 0.3,
                                  "relevance_score": round(r.random(), 3),
                                  "confidence_score": round(r.random(), 3),
                                  "fallback": r.random() < 0.05, "source": r.choice(RAG_SOURCES)}
        workflow = r.choice(list(WORKFLOWS))
        return contract.WORKFLOWS, {"workflowId": workflow, "stepId": r.choice(WORKFLOWS[workflow]),
                                    "duration_seconds": round(r.lognormvariate(3, 1), 3)}

    def payload(self, channel: str, event: dict[str, Any]) -> bytes:
        event["timestamp"] = time.time()
        if self.sequenced:
            self.seq[channel] = self.seq.get(channel, 0) + 1
            event["_pub"], event["_seq"] = "bench", self.seq[channel]
        return orjson.dumps(event)

    def messages(self, n: int) -> list[tuple[str, bytes]]:
        return [(channel, self.payload(channel, event))
                for channel, event in (self.event() for _ in range(n))]


def probe_event(k: int) -> bytes:
    """An agent status event whose taskCount (a gauge) identifies the probe."""
    return orjson.dumps({"agentId": PROBE, "agentType": "probe", "status": "idle",
                         "taskCount": k, "timestamp": time.time()})


def probe_line(k: int) -> str:
    return f'agent_current_tasks{{agent="{PROBE}"}} {float(k)!r}\n'


# -- publishing -----------------------------------------------------------------------------------

def resp(*args: bytes) -> bytes:
    """One Redis command in the wire protocol."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def command(transport: str, channel: str, payload: bytes) -> bytes:
    if transport == "pubsub":
        return resp(b"PUBLISH", channel.encode(), payload)
    return resp(b"XADD", channel.encode(), b"*", b"data", payload)


class RawPublisher:
    """Pipelined commands over a plain socket: pre-built bytes out, replies read and dropped on
    a thread. The cheapest Python publisher, so it steals as little CPU as possible."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._flushed = threading.Event()
        self._drain = threading.Thread(target=self._discard, daemon=True)
        self._drain.start()

    def _discard(self) -> None:
        tail = b""
        try:
            while data := self.sock.recv(1 << 20):
                tail = (tail + data)[-7:]
                if tail == b"+PONG\r\n":
                    self._flushed.set()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        """Wait until Redis has answered everything (closing earlier drops what it has not read),
        then disconnect."""
        self.sock.sendall(resp(b"PING"))
        self._flushed.wait(300)
        self.sock.shutdown(socket.SHUT_RDWR)
        self._drain.join(5)
        self.sock.close()


class SteadyPublisher(threading.Thread):
    """Publishes the mix at `rate` events/s in 10 ms ticks until stopped."""

    TICK = 0.01

    def __init__(self, port: int, transport: str, rate: float, mix: Mix) -> None:
        super().__init__(daemon=True)
        self.publisher = RawPublisher(port)
        self.transport, self.rate, self.mix = transport, rate, mix
        self.stop = threading.Event()
        self.sent = 0
        self.elapsed = 0.0

    def run(self) -> None:
        start = time.perf_counter()
        tick = 0
        while not self.stop.is_set():
            tick += 1
            due = int(self.rate * tick * self.TICK) - self.sent
            if due > 0:
                self.publisher.send(b"".join(command(self.transport, c, p)
                                             for c, p in self.mix.messages(due)))
                self.sent += due
            delay = start + tick * self.TICK - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        self.elapsed = time.perf_counter() - start
        self.publisher.close()

    def achieved(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0


# -- processes ------------------------------------------------------------------------------------

def start_redis(workdir: Path) -> RedisServer:
    """A benchmark's own redis-server. The pub/sub output-buffer limit is lifted (default: 32 MB
    hard) so that a subscriber is not cut off while a burst queues up in Redis for it."""
    return RedisServer(workdir, ["--client-output-buffer-limit", "pubsub 0 0 0"]).start()


def start_exporter(workdir: Path, redis_url: str, source: str, *args: str,
                   config: str | None = None) -> Exporter:
    return Exporter(workdir, redis_url, ["--source", source, "--log-level", "warning", *args],
                    config=config).wait_ready(timeout=30)


class Receiver:
    """The baseline: a receive-only redis-py client in its own process (bench/receiver.py)."""

    def __init__(self, redis_url: str, transport: str, count: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", transport, redis_url, str(count)],
            cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout
        if self.stdout.readline().strip() != "ready":
            raise RuntimeError("the baseline receiver did not start")

    def lines(self) -> Iterator[str]:
        return iter(self.stdout.readline, "")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


def events_total(text: str) -> float:
    """Sum of agent_exporter_events_total over its series in an exposition."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("agent_exporter_events_total{"))


def scrape(url: str, session: requests.Session | None = None) -> str:
    response = (session or requests).get(url + "/metrics", timeout=30)
    response.raise_for_status()
    return response.text


def sample_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))
