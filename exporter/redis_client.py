"""The one way the exporter makes Redis clients.

Every part (event sources, key checks, the alert bridge, the publisher) gets its client here,
each with the timeouts and retries its job needs; what they share (which URLs are understood,
TLS, Sentinel discovery, keepalive, RESP2) is decided once.

    redis://[[user]:password@]host[:port][/db]
    rediss://…                                   TLS
    unix:///path/redis.sock[?db=N]
    redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service[/db]
    rediss+sentinel://…                          TLS to the Sentinels and to the master

The user and password are the Redis servers'; the Sentinels' own come as query options
(`sentinel_username`, `sentinel_password`), as do TLS files and checks (`ssl_ca_certs`,
`ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`, under redis-py's names)
and `db`. Discovery and failover are redis-py's (`Sentinel.master_for`): a connection asks the
Sentinels where the master is, and one that finds a demoted master drops.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel
from redis.sentinel import SentinelConnectionPool as SentinelPool

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES)
SENTINEL_PORT = 26379
TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
TLS_OPTIONS = (*TLS_FILES, "ssl_cert_reqs", "ssl_check_hostname")
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
CERT_REQS = ("none", "optional", "required")
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class Target:
    """What a URL names: one server (`server_url`, its options apart) or a Sentinel service."""

    server_url: str = ""  # redis://, rediss:// or unix:// with no option but db
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # connecting to the Redis servers
    sentinel_options: dict[str, Any] = field(default_factory=dict)  # connecting to the Sentinels


def parse(url: str) -> Target:
    """The target of `url`; ValueError saying what is wrong with it (never repeating it)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a Redis URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"not a Redis URL (scheme {parts.scheme or '(none)'!r}, expected "
                         + ", ".join(s + "://" for s in SCHEMES[:-1]) + f" or {SCHEMES[-1]}://)")
    tls = parts.scheme.startswith("rediss")
    options = _options(parts.query, parts.scheme, tls)
    sentinel_options = {name[len("sentinel_"):]: options.pop(name)
                        for name in SENTINEL_OPTIONS if name in options}
    if parts.scheme not in SENTINEL_SCHEMES:
        if parts.scheme == "unix" and not parts.path:
            raise ValueError("no socket path")
        if parts.scheme != "unix" and not _address(parts.netloc.rpartition("@")[2], 6379):
            raise ValueError("no host")
        db = "?" + urlencode({"db": options.pop("db")}) if "db" in options else ""
        return Target(server_url=url.partition("?")[0] + db, options=options)

    userinfo, _, hosts = parts.netloc.rpartition("@")
    found = [_address(host, SENTINEL_PORT) for host in hosts.split(",")]
    sentinels = tuple(address for address in found if address)
    if len(sentinels) < len(found):
        raise ValueError("expected host:port[,host:port…] of the Sentinels")
    path = [unquote(p) for p in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
    if not 1 <= len(path) <= 2 or not path[0]:
        raise ValueError("expected /service or /service/db after the Sentinels")
    if len(path) == 2:
        options["db"] = _db(path[1])
    if userinfo:
        user, colon, password = userinfo.partition(":")
        options.update({"username": unquote(user)} if user else {})
        options.update({"password": unquote(password)} if colon else {})
    if tls:
        options["ssl"] = True
        sentinel_options.update({k: v for k, v in options.items() if k.startswith("ssl")})
    return Target(sentinels=sentinels, service=path[0], options=options,
                  sentinel_options=sentinel_options)


def _options(query: str, scheme: str, tls: bool) -> dict[str, Any]:
    allowed = ("db", *(TLS_OPTIONS if tls else ()),
               *(SENTINEL_OPTIONS if scheme in SENTINEL_SCHEMES else ()))
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            hint = " (TLS options need rediss://)" if name in TLS_OPTIONS else ""
            raise ValueError(f"unknown option {name!r}" + (hint or f" ({scheme}:// takes "
                                                            + ", ".join(allowed) + ")"))
        if name == "db":
            options[name] = _db(value)
        elif name == "ssl_cert_reqs" and value not in CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
        elif name == "ssl_check_hostname":
            if value.lower() not in BOOLEANS:
                raise ValueError("ssl_check_hostname must be true or false")
            options[name] = BOOLEANS[value.lower()]
        elif not value:
            raise ValueError(f"empty option {name}")
        else:
            options[name] = value
    return options


def _address(text: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of `host[:port]` (an IPv6 host in brackets); None without a host."""
    try:
        parts = urlsplit("//" + text)
    except ValueError:
        raise ValueError(f"bad host {text!r}") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError("bad port") from None
    return (parts.hostname, port or default_port) if parts.hostname else None


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"db must be a number, not {text!r}")
    return int(text)


class SentinelClient(redis.Redis):
    """A client of the master a Sentinel set names; closing it closes its Sentinel clients."""

    def close(self) -> None:
        super().close()
        pool = self.connection_pool
        for sentinel in pool.sentinel_manager.sentinels if isinstance(pool, SentinelPool) else ():
            sentinel.close()


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A client for any URL `parse` accepts, with redis-py's connection keyword arguments."""
    target = parse(url)
    if not target.sentinels:
        return redis.Redis.from_url(target.server_url, **target.options, **kwargs)
    reach = {k: v for k, v in kwargs.items() if k.startswith("socket_") or k == "retry"}
    sentinels = Sentinel(target.sentinels, sentinel_kwargs={**reach, **target.sentinel_options})
    return sentinels.master_for(target.service, redis_class=SentinelClient,
                                **target.options, **kwargs)


def client(url: str, timeout: float, retries: int = 0,
           connect_timeout: float = 2.0) -> redis.Redis:
    """A client whose every read waits at most `timeout` seconds.

    `retries` 0 surfaces every lost connection to the caller (redis-py would otherwise retry
    silently), so the sources can count reconnects and re-subscribe. RESP2: under RESP3 every
    pub/sub message takes redis-py's push-notification path, several times slower.
    """
    return connect(url, socket_timeout=timeout, socket_connect_timeout=connect_timeout,
                   socket_keepalive=True, retry=Retry(NoBackoff(), retries), protocol=2)

