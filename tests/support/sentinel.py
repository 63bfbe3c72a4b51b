"""Redis that survives a node, for the tests: a master, a replica and three real Sentinels
(`redis-sentinel`) on loopback, every one with a password (and, given `tls`, TLS only),
timers shortened so that a failover takes seconds."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import redis

from tests.support.procs import Proc, RedisServer, free_port, require_binary, wait_until
from tests.support.redis_tls import RedisTls, TlsRedisServer

SERVICE = "swarm"
PASSWORD = "data-secret"  # the Redis servers'
SENTINEL_PASSWORD = "sentinel-secret"  # the Sentinels' own


class SentinelSet:
    """Started by `start()`, ready once every Sentinel knows the replica and the other two."""

    def __init__(self, workdir: Path, tls: RedisTls | None = None,
                 down_after_ms: int = 1000, failover_timeout_ms: int = 5000) -> None:
        self.workdir = workdir
        self.tls = tls
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self.binary = require_binary("redis-sentinel")
        auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
        self.master = self._server(workdir / "master", auth)
        self.replica = self._server(workdir / "replica", [*auth, "--replicaof", "127.0.0.1",
                                                          str(self.master.port)])
        for server in (self.master, self.replica):
            server.url = server.url.replace("://", f"://:{PASSWORD}@", 1)
        self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[Proc] = []
        self._clients: dict[int, redis.Redis] = {}

    def _server(self, workdir: Path, extra: list[str]) -> RedisServer:
        if self.tls is None:
            return RedisServer(workdir, extra)
        return TlsRedisServer(workdir, self.tls, extra)

    def _tls(self) -> dict[str, str]:
        return {} if self.tls is None else self.tls.client_options()

    @property
    def url(self) -> str:
        """The exporter's URL for the service: both passwords, every Sentinel."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        scheme = "redis+sentinel" if self.tls is None else "rediss+sentinel"
        options = urlencode({"sentinel_password": SENTINEL_PASSWORD, **self._tls()})
        return f"{scheme}://:{PASSWORD}@{hosts}/{SERVICE}/0?{options}"

    def start(self) -> SentinelSet:
        self.master.start()
        self.replica.start()
        for port in self.ports:
            config = self.workdir / f"sentinel-{port}.conf"  # Sentinel rewrites its own file
            listen = (f"port {port}\n" if self.tls is None else
                      f"port 0\ntls-port {port}\n" + "".join(
                          f"{name} {setting}\n"
                          for name, setting in self.tls.server_settings().items()))
            config.write_text(
                f"{listen}bind 127.0.0.1\ndir {self.workdir}\n"
                f"requirepass {SENTINEL_PASSWORD}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n")
            self.sentinels.append(Proc([self.binary, str(config)],
                                       self.workdir / f"sentinel-{port}.log"))
        wait_until(self._settled, timeout=30, interval=0.2,
                   message="every Sentinel sees the master, the replica and the two others")
        return self

    def sentinel(self, port: int) -> redis.Redis:
        if port not in self._clients:
            scheme = "redis" if self.tls is None else "rediss"
            self._clients[port] = redis.Redis.from_url(
                f"{scheme}://:{SENTINEL_PASSWORD}@127.0.0.1:{port}/0?{urlencode(self._tls())}",
                socket_timeout=2)
        return self._clients[port]

    def master_port(self) -> int | None:
        """The master's port as a majority of the Sentinels tell it."""
        votes: dict[int, int] = {}
        for port in self.ports:
            try:
                address: Any = self.sentinel(port).sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            if address:
                votes[int(address[1])] = votes.get(int(address[1]), 0) + 1
        return next((port for port, n in votes.items() if n >= 2), None)

    def _settled(self) -> bool:
        for port in self.ports:
            state: Any = self.sentinel(port).sentinel_master(SERVICE)
            if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                return False
        info = self.replica.client().info("replication")
        return info["master_link_status"] == "up"

    def fail_master(self) -> float:
        """SIGKILL the master; wait for the Sentinels to promote the replica. The seconds
        that took."""
        started = time.monotonic()
        self.master.kill()
        wait_until(lambda: self.master_port() == self.replica.port, timeout=60, interval=0.05,
                   message="the Sentinels promote the replica")
        wait_until(lambda: self.replica.client().info("replication")["role"] == "master",
                   timeout=30, message="the replica takes the master's role")
        return time.monotonic() - started

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        for proc in self.sentinels:
            proc.stop()
        self.replica.stop()
        self.master.stop()
