"""The Redis URLs the exporter takes (plain, TLS, unix, Sentinel): what each one connects to,
what start-up refuses, and that no password of any of them reaches a log line."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from exporter.config import ConfigError, load
from exporter.redact import redacted_url as redacted
from exporter.redis_client import client, connect, parse
from tests.support.procs import REPO

SENTINELS = "redis+sentinel://:data%40pw@10.0.0.1,10.0.0.2:26380,[fd00::3]:5000/swarm/2"


def test_a_sentinel_url_names_every_sentinel_the_service_and_the_db():
    target = parse(SENTINELS + "?sentinel_password=s3cret&sentinel_username=watcher")
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("fd00::3", 5000))
    assert target.service == "swarm"
    assert target.options == {"db": 2, "password": "data@pw"}
    assert target.sentinel_options == {"password": "s3cret", "username": "watcher"}


def test_a_sentinel_client_asks_the_sentinels_with_their_password_and_the_master_with_its_own():
    redis_client = client(SENTINELS + "?sentinel_password=s3cret", timeout=0.5)
    pool = redis_client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "swarm"
    assert pool.connection_kwargs["password"] == "data@pw"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["socket_timeout"] == 0.5
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [26379, 26380, 5000]
    assert {s.connection_pool.connection_kwargs["password"] for s in sentinels} == {"s3cret"}
    redis_client.close()


def test_tls_options_reach_the_connections_of_the_master_and_of_the_sentinels():
    options = "ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/c.key&ssl_cert_reqs=required"
    sentinel = connect(f"rediss+sentinel://h1,h2/swarm?{options}")
    pool = sentinel.connection_pool
    assert issubclass(pool.connection_class, SentinelManagedSSLConnection)
    assert pool.connection_kwargs["ssl_ca_certs"] == "/ca.pem"
    assert all(s.connection_pool.connection_class is SSLConnection and
               s.connection_pool.connection_kwargs["ssl_keyfile"] == "/c.key"
               for s in pool.sentinel_manager.sentinels)
    plain = connect(f"rediss://h:6380/1?{options}&ssl_check_hostname=false").connection_pool
    assert plain.connection_class is SSLConnection
    assert plain.connection_kwargs["ssl_certfile"] == "/c.pem"
    assert plain.connection_kwargs["ssl_check_hostname"] is False
    assert plain.connection_kwargs["db"] == 1


def test_closing_a_sentinel_client_closes_its_sentinel_connections():
    redis_client = connect("redis+sentinel://127.0.0.1:1/swarm")
    sentinel = redis_client.connection_pool.sentinel_manager.sentinels[0]
    closed = []
    sentinel.close = lambda: closed.append(True)
    redis_client.close()
    assert closed == [True]


@pytest.mark.parametrize("url, db", [
    ("redis://h:1/3", 3), ("redis://h/0?db=4", 4), ("unix:///run/redis.sock?db=5", 5)])
def test_plain_urls_keep_their_db(url, db):
    assert connect(url).connection_pool.connection_kwargs["db"] == db


@pytest.mark.parametrize("url, problem", [
    ("mysql://h/0", "not a Redis URL (scheme 'mysql'"),
    ("redis://h:99999/0", "bad port"),
    ("redis://:pw@/0", "no host"),
    ("unix://", "no socket path"),
    ("redis://h/0?socket_timeout=1", "unknown option 'socket_timeout' (redis:// takes db)"),
    ("redis://h/0?ssl_ca_certs=/ca.pem", "unknown option 'ssl_ca_certs' (TLS options need rediss://)"),
    ("redis://h/0?sentinel_password=x", "unknown option 'sentinel_password'"),
    ("rediss://h/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of none, optional, required"),
    ("rediss://h/0?ssl_check_hostname=perhaps", "ssl_check_hostname must be true or false"),
    ("rediss://h/0?ssl_ca_certs=", "empty option ssl_ca_certs"),
    ("redis+sentinel://h1:1,h2:2", "expected /service or /service/db"),
    ("redis+sentinel://h1:1,,h2/swarm", "host:port[,host:port…] of the Sentinels"),
    ("redis+sentinel://h1:x/swarm", "bad port"),
    ("redis+sentinel://[::1]:1,[::2:2/swarm", "bad host '[::2:2'"),
    ("redis+sentinel://h1/swarm/zero", "db must be a number"),
    ("redis+sentinel://h1/swarm/0/extra", "expected /service or /service/db"),
])
def test_a_bad_url_is_refused_saying_why(url, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse(url)


@pytest.mark.parametrize("url, shown", [
    ("redis://h:1/0", "redis://h:1/0"),
    ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
    ("rediss://user:p%40ss@h/0?ssl_ca_certs=/ca.pem", "rediss://user:***@h/0?ssl_ca_certs=/ca.pem"),
    (SENTINELS + "?sentinel_username=w&sentinel_password=s3cret",
     "redis+sentinel://:***@10.0.0.1,10.0.0.2:26380,[fd00::3]:5000/swarm/2"
     "?sentinel_username=w&sentinel_password=***"),
    ("redis://:pa/ss@h/0", "redis://:***@h/0"),  # a password that breaks URL parsing
    ("redis://:pw@[::1/0", "redis://:***@[::1/0"),
])
def test_redacted_shows_no_password(url, shown):
    assert redacted(url) == shown


def test_a_bad_redis_url_stops_start_up_naming_the_key_without_the_password(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text("redis_url: redis+sentinel://:hunter2@h1/swarm?sentinel_password=x&retry=9\n")
    with pytest.raises(ConfigError) as caught:
        load(str(path), env={})
    message = str(caught.value)
    assert "redis_url: unknown option 'retry'" in message and str(path) in message
    assert "in 'redis+sentinel://:***@h1/swarm?sentinel_password=***&retry=9'" in message
    assert "hunter2" not in message and "sentinel_password=***" in message


@pytest.mark.integration
def test_the_cli_exits_2_on_a_bad_redis_url():
    result = subprocess.run([sys.executable, "-m", "exporter", "--redis-url",
                             "rediss+sentinel://:hunter2@h1,h2/swarm?ssl_cert_reqs=sometimes"],
                            capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert result.returncode == 2
    assert "flag --redis-url: redis_url: ssl_cert_reqs must be one of" in result.stderr
    assert "hunter2" not in result.stderr


def test_tls_files_must_be_readable_at_start_up(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = f"rediss://h/0?ssl_ca_certs={ca}&ssl_certfile={tmp_path / 'missing.pem'}"
    with pytest.raises(ConfigError, match="redis_url: ssl_certfile: cannot read .*missing.pem"):
        load(None, env={"REDIS_URL": url})
    assert load(None, env={"REDIS_URL": f"rediss://h/0?ssl_ca_certs={ca}"}).redis_url


def test_the_streams_replica_wait_is_a_setting_and_zero_turns_it_off(tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text("streams:\n  replica_wait_seconds: 0\n")
    assert load(str(path), env={}).streams.replica_wait_seconds == 0
    path.write_text("streams:\n  replica_wait_seconds: -1\n")
    with pytest.raises(ConfigError, match="streams.replica_wait_seconds"):
        load(str(path), env={})
