"""Fixtures: real redis-server (one per session, flushed per test) and exporter factories."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from procs import Exporter, RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture()
def start_exporter(tmp_path: Path) -> Iterator:
    """Factory: start_exporter(redis_url, *args, config=None, env=None) → a healthy Exporter."""
    started: list[Exporter] = []

    def start(redis_url: str, *args: str, config: str | None = None,
              env: dict[str, str] | None = None, ready: bool = True) -> Exporter:
        exporter = Exporter(tmp_path, redis_url, args, config=config, env=env)
        started.append(exporter)
        return exporter.wait_ready() if ready else exporter.wait_healthy()

    yield start
    for exporter in started:
        exporter.stop()
