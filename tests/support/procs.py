"""Real servers for the tests: start on free loopback ports, wait for readiness, stop by PID.

Nothing here sleeps to synchronise: every wait polls a condition against a deadline.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
PROCESSES_ALLOWED = True  # set per test by conftest: only integration tests start processes


def _check_allowed(what: str) -> None:
    if not PROCESSES_ALLOWED:
        raise AssertionError(f"this test starts {what}: mark it @pytest.mark.integration")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(name: str) -> str:
    """Path of a server binary; without it, a skip locally and a failure in CI."""
    _check_allowed(name)
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (./scripts/test installs it when run as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy; fail with `message` at the deadline.

    An AssertionError from the condition (say, a server that died) fails at once."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except AssertionError:
            raise
        except Exception as exc:  # the server may not be up yet
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


class Proc:
    """A child process with its log file, stopped by PID."""

    def __init__(self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        _check_allowed(argv[0])
        self.argv = list(argv)
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 — open for the process's lifetime, closed in stop()
        self.popen = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)


class RedisServer:
    """A real redis-server on a free loopback port with its data in `workdir`."""

    def __init__(self, workdir: Path, extra: Sequence[str] = (), port: int | None = None) -> None:
        self.binary = require_binary("redis-server")
        self.workdir = workdir
        self.extra = list(extra)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: Proc | None = None

    def start(self) -> RedisServer:
        import redis

        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
                "--protected-mode", "no", *self.extra]
        self.proc = Proc(argv, self.workdir / "redis.log")
        client = redis.Redis.from_url(self.url)
        wait_until(client.ping, timeout=10, message=f"redis-server on port {self.port}")
        client.close()
        return self

    def client(self, **kwargs: Any):
        import redis

        return redis.Redis.from_url(self.url, **kwargs)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()


# Flags for an exporter that reads events only: no host, GPU or Redis-state readings.
NO_COLLECTORS = ("--no-collector.host", "--no-collector.gpu", "--no-collector.redis_state")


class Exporter:
    """`agent-exporter` as a subprocess (the real command line), ready when /healthz answers."""

    def __init__(self, workdir: Path, redis_url: str, args: Sequence[str] = (),
                 config: str | None = None, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "exporter", "--redis-url", redis_url,
                "--listen", f"127.0.0.1:{self.port}", *args]
        if config is not None:
            path = workdir / f"exporter-{self.port}.yml"
            path.write_text(config)
            argv += ["--config", str(path)]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_EXPORTER_")}
        full_env.update(env or {})
        full_env["PYTHONUNBUFFERED"] = "1"
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc(argv, workdir / f"exporter-{self.port}.log", env=full_env, cwd=REPO)

    def wait_healthy(self, timeout: float = 20) -> Exporter:
        def healthy() -> bool:
            if not self.proc.alive():
                raise AssertionError(f"exporter exited:\n{self.proc.log()}")
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200

        wait_until(healthy, timeout=timeout, message="exporter /healthz")
        return self

    def wait_ready(self, timeout: float = 20) -> Exporter:
        self.wait_healthy(timeout)
        wait_until(lambda: requests.get(self.url + "/readyz", timeout=1).status_code == 200,
                   timeout=timeout, message="exporter /readyz")
        return self

    def scrape(self) -> str:
        response = requests.get(self.url + "/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def samples(self) -> dict[tuple[str, frozenset], float]:
        return parse_samples(self.scrape())

    def stop(self) -> int | None:
        return self.proc.stop()


def parse_samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Exposition text → {(sample name, frozenset(labels.items())): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: dict[tuple[str, frozenset], float], metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))
