"""Fixtures: real redis-server (one per session, flushed per test) and exporter factories.

Tests are unit tests unless marked `integration`; only those may start a process (a server, a
tool, the CLI), so that `pytest -m "not integration"` is the fast check it claims to be. A test
that takes a server fixture is marked for you; any other that starts a process is told to be.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import procs
from tests.support.procs import Exporter, RedisServer

SERVER_FIXTURES = frozenset({"redis_server", "redis_url", "start_exporter"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/fixtures/golden/ from the current exporter")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of the test runs: may it start processes?"""
    procs.PROCESSES_ALLOWED = item.get_closest_marker("integration") is not None


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
    """Factory: start_exporter(redis_url, *args, config=None, env=None, **Exporter options) →
    a ready Exporter (with ready=False: only healthy)."""
    started: list[Exporter] = []

    def start(redis_url: str, *args: str, config: str | None = None,
              env: dict[str, str] | None = None, ready: bool = True, **options: Any) -> Exporter:
        exporter = Exporter(tmp_path, redis_url, args, config=config, env=env, **options)
        started.append(exporter)
        return exporter.wait_ready() if ready else exporter.wait_healthy()

    yield start
    for exporter in started:
        exporter.stop()
