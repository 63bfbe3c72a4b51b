"""Redis Streams with a consumer group: at-least-once delivery, made exact by checkpoints.

An entry read with XREADGROUP is applied at once but acknowledged only by a checkpoint: one
MULTI/EXEC that stores the whole metric state and acknowledges exactly the entries that state
includes. After a crash the exporter restores the last checkpoint and re-reads its still-pending
entries (same consumer name), so every entry counts once: no loss, no double count, no counter
reset. Entries left pending by a consumer that never came back are claimed (XPENDING, XCLAIM).

The checkpoint runs on the reader's own thread with no read in flight, and every entry Redis
delivered to this consumer has been applied by then (a reply lost with a dropped connection is
read again on reconnecting), so the consumer's pending list is exactly what the state includes.
It is acknowledged with XGROUP DELCONSUMER, which drops the consumer with its pending list (the
next XREADGROUP creates it again), instead of an XACK naming every id: at 100 k entries/s that
XACK cost 7 % of the reader's CPU to pack, and Redis as much again to parse.

Replication is asynchronous, so a failover can bring back an older pending list: when the master
has replicas, a checkpoint waits (WAIT) for one to have it, and after a reconnect the entries
the new master delivers again are recognised by their ids and not counted twice.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from ..contract import is_pattern, parse_channels
from ..dispatcher import NO_DATA, Dispatcher
from ..store import Store
from ..throttle import Throttled
from ..validation import (
    ConfigError,
    expect,
    expect_mapping,
    not_negative,
    positive,
    positive_int,
)
from . import RedisHealth, RedisSource, name_text
from .health import error_name

log = logging.getLogger(__name__)
throttled = Throttled(log)

DISCOVER_SECONDS = 10.0


@dataclass(frozen=True)
class StreamsSettings:
    """The `streams:` config section."""

    group: str = "agent-exporter"
    start: str = "0"  # where a new group starts: "0" the whole stream, "$" new entries only
    batch: int = 500
    block_ms: int = 1000
    claim_idle_seconds: float = 60.0
    checkpoint_seconds: float = 5.0
    replica_wait_seconds: float = 1.0  # how long a checkpoint waits for a replica; 0: never
    keys: Mapping[str, str] | None = None  # stream key → event type; None: the channels


def parse_streams(value: Any, key: str, origin: str) -> StreamsSettings:
    names = StreamsSettings.__dataclass_fields__
    expect_mapping(value, names, key, origin)
    out: dict[str, Any] = {}
    if "group" in value:
        out["group"] = expect(value["group"], str, f"{key}.group", origin)
    if "start" in value:
        if value["start"] not in ("0", "$"):
            raise ConfigError(f"{key}.start", "expected \"0\" (whole stream) or \"$\" (new entries)",
                              origin)
        out["start"] = value["start"]
    for name in ("batch", "block_ms"):
        if name in value:
            out[name] = positive_int(value[name], f"{key}.{name}", origin)
    for name in ("claim_idle_seconds", "checkpoint_seconds"):
        if name in value:
            out[name] = positive(value[name], f"{key}.{name}", origin)
    if "replica_wait_seconds" in value:
        out["replica_wait_seconds"] = not_negative(value["replica_wait_seconds"],
                                                   f"{key}.replica_wait_seconds", origin)
    if value.get("keys") is not None:
        out["keys"] = parse_channels(value["keys"], f"{key}.keys", origin)
    return StreamsSettings(**out)


class UnreadableCheckpoint(Exception):
    """A checkpoint whose content cannot be restored (not JSON, not the store's shape, not a
    string): it is skipped, and the next checkpoint replaces it."""


class StreamsSource(RedisSource):
    name = "streams"

    def __init__(self, redis_url: str, routes: Mapping[str, str], dispatcher: Dispatcher,
                 health: RedisHealth, store: Store, settings: StreamsSettings,
                 consumer: str) -> None:
        """`routes`: configured stream key or glob pattern → the dispatcher route it feeds."""
        super().__init__(redis_url, health)
        self.routes = dict(routes)
        self.dispatcher = dispatcher
        self.store = store
        self.group = settings.group
        self.start_id = settings.start
        self.batch = settings.batch
        self.block_ms = settings.block_ms
        self.longest_wait = settings.block_ms / 1000
        self.socket_timeout = self.longest_wait + RedisSource.socket_timeout  # a blocked read
        self.claim_idle_ms = int(settings.claim_idle_seconds * 1000)
        self.checkpoint_seconds = settings.checkpoint_seconds
        self.replica_wait_ms = int(settings.replica_wait_seconds * 1000)
        self._had_replicas = False  # the last checkpoint's master listed replicas
        self.consumer = consumer
        self.checkpoint_key = f"agent-exporter:checkpoint:{self.group}:{consumer}"
        # Stream keys are bytes as Redis has them (they need not be UTF-8): key → (route, the
        # key as label text).
        self.streams: dict[bytes, tuple[str, str]] = {}
        self.unacked: dict[bytes, list[bytes]] = {}
        self.last_ids: dict[bytes, tuple[int, int]] = {}  # the newest entry applied per stream
        self.unsaved = False  # state changed in a way no acknowledgement will checkpoint
        self.restored = False
        self._own_families()

    def _own_families(self) -> None:
        own: dict[str, Any] = dict(ttl=0)
        self.read = self.store.family("agent_exporter_stream_entries_read_total", "counter",
                                      "Stream entries read through the consumer group.",
                                      ["stream"], **own)
        self.acked = self.store.family("agent_exporter_stream_entries_acked_total", "counter",
                                       "Stream entries acknowledged by a checkpoint.",
                                       ["stream"], **own)
        self.acked.persist = False
        self.claimed = self.store.family("agent_exporter_stream_entries_claimed_total", "counter",
                                         "Entries claimed from consumers idle past "
                                         "claim_idle_seconds.", ["stream"], **own)
        self.pending = self.store.family("agent_exporter_stream_pending_entries", "gauge",
                                         "Entries delivered to the group and not yet "
                                         "acknowledged (XINFO GROUPS).", ["stream"], **own)
        self.lag = self.store.family("agent_exporter_stream_lag_entries", "gauge",
                                     "Entries in the stream not yet delivered to the group "
                                     "(XINFO GROUPS lag).", ["stream"], **own)
        self.checkpoints = self.store.family("agent_exporter_checkpoints_total", "counter",
                                             "Checkpoints written, by result (ok, unreplicated "
                                             "or error).", ["result"], **own)
        self.pending.persist = self.lag.persist = self.checkpoints.persist = False

    # -- the session --------------------------------------------------------------------------

    def session(self, client: redis.Redis, stop: threading.Event) -> None:
        # Entries as Redis sends them ([id, [field, value, …]]): no dict per entry on the hot path.
        client.set_response_callback("XREADGROUP", lambda response, **options: response)
        self._prepare(client)
        self.live()
        self._consume(client, stop)
        self._checkpoint(client)  # stopping: persist what was read

    def _prepare(self, client: redis.Redis) -> None:
        """Streams and groups, found afresh every session: a stream deleted, turned into another
        type or lost with a Redis restarted empty since the last one is taken as it is now.
        Then, once per process, the checkpoint and this consumer's pending entries (applied
        before a crash, never checkpointed). After a new session the applied state is still in
        memory and its unacknowledged ids are listed; what else is pending was delivered in a
        reply the dropped connection lost, and only that is read again."""
        self.streams.clear()
        self._discover(client)
        for key in [k for k in self.unacked if k not in self.streams]:
            del self.unacked[key]  # the stream is gone, and its pending list with it
            self.unsaved = True
        if self.restored:
            applied = {s: set(ids) for s, ids in self.unacked.items()}
            pending = self._read_pending(client, applied)
            self._skip_redelivered(client, {s: ids - pending[s] for s, ids in applied.items()
                                            if ids - pending[s]})
            return
        self._restore(client)
        self._read_pending(client, {})
        self.restored = True

    def _restore(self, client: redis.Redis) -> None:
        """Load the checkpoint, or skip it when its content cannot be loaded (counted, logged
        with the key): never retried forever, never loaded half. Failing to fetch it (a lost
        connection, a missing permission) ends the session instead, to be tried again."""
        try:
            blob = client.get(self.checkpoint_key)
        except redis.ResponseError as exc:
            if error_name(exc) != "WRONGTYPE":  # the key holds another type: unreadable
                raise
            problem: Exception = exc
        else:
            if not blob:
                return
            try:
                snapshot = orjson.loads(blob)
                _rehearse(self.store, snapshot)
            except Exception as exc:  # whatever the content makes the loader raise
                problem = exc
            else:
                self.store.load(snapshot)
                log.info("restored checkpoint %s", self.checkpoint_key)
                return
        self.health.failed(self.name, UnreadableCheckpoint(
            f"checkpoint {self.checkpoint_key}: {type(problem).__name__}: {str(problem)[:200]}"),
            "skipped; the next checkpoint replaces it")
        self.unsaved = True

    def _consume(self, client: redis.Redis, stop: threading.Event) -> None:
        """Read new entries with one XREADGROUP in flight: the next batch is requested before
        the current one is applied, so Redis and the exporter work side by side; only a
        checkpoint waits for the read in flight to be applied first. At a low rate the request
        after a small batch waits, so that it takes several entries (Gather)."""
        reader = client.connection_pool.get_connection()
        try:
            in_flight = self._request(reader)
            next_checkpoint = next_claim = next_discover = time.monotonic()
            gather = self.gather
            while not stop.is_set():
                reply = reader.read_response() if in_flight else None
                gather.after(sum(len(entries) for _, entries in _by_stream(reply)), stop)
                now = time.monotonic()
                in_flight = now < next_checkpoint and self._request(reader)
                for stream, entries in _by_stream(reply):
                    self._apply(stream, entries)
                if now >= next_claim:
                    self._claim(client)
                    next_claim = now + self.claim_idle_ms / 2000
                if now >= next_discover:
                    self._discover(client)
                    next_discover = now + DISCOVER_SECONDS
                if now >= next_checkpoint:  # nothing in flight: see _checkpoint
                    self._checkpoint(client)
                    next_checkpoint = now + self.checkpoint_seconds
            if in_flight:  # stopping: what was delivered is applied, then checkpointed
                for stream, entries in _by_stream(reader.read_response()):
                    self._apply(stream, entries)
        finally:
            client.connection_pool.release(reader)

    def _request(self, reader: redis.connection.Connection) -> bool:
        """Send XREADGROUP for new entries of every stream; False when there is none yet."""
        if not self.streams:
            time.sleep(self.block_ms / 1000)
            return False
        reader.send_command("XREADGROUP", "GROUP", self.group, self.consumer,
                            "COUNT", self.batch, "BLOCK", self.block_ms,
                            "STREAMS", *self.streams, *(">" for _ in self.streams))
        return True

    # -- steps --------------------------------------------------------------------------------

    def _discover(self, client: redis.Redis) -> None:
        """Resolve patterns to stream keys and make sure every stream has the group. A key that
        holds another type is left out (counted, logged) and tried again at the next discovery:
        one bad key must not stop the other streams."""
        for key, route in self.routes.items():
            keys = (list(client.scan_iter(match=key, count=1000, _type="stream"))
                    if is_pattern(key) else [key.encode()])
            for stream in keys:
                if stream in self.streams:
                    continue
                try:
                    created = self._create_group(client, stream)
                except redis.ResponseError as exc:
                    if error_name(exc) != "WRONGTYPE":
                        raise
                    self.health.failed(self.name, exc, f"{name_text(stream)} is not read until "
                                       "it is a stream again")
                    continue
                self.streams[stream] = (route, name_text(stream))
                if created and self.restored:  # a group lost since: the checkpoint may be too
                    self.unsaved = True
                self.unacked[stream] = [] if created else self.unacked.get(stream, [])

    def _create_group(self, client: redis.Redis, stream: bytes) -> bool:
        """True when the group is new (the stream, too, if it did not exist). A group this
        process has read from before starts after the newest entry it applied: if the group
        alone was lost, what it had delivered is not read twice, and a stream that was lost
        with it gets new entries with newer ids anyway."""
        last = self.last_ids.get(stream)
        start = self.start_id if last is None else f"{last[0]}-{last[1]}"
        try:
            client.xgroup_create(stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if error_name(exc) != "BUSYGROUP":
                raise
            return False
        return True

    def _read_pending(self, client: redis.Redis,
                      applied: dict[bytes, set[bytes]]) -> dict[bytes, set[bytes]]:
        """Apply every entry delivered to this consumer and not acknowledged, oldest first,
        except those already `applied`; the ids of all of them, by stream."""
        cursors: dict[Any, Any] = {s: "0" for s in self.streams}
        pending: dict[bytes, set[bytes]] = {s: set() for s in self.streams}
        while cursors:
            replies = client.xreadgroup(self.group, self.consumer, cursors, count=self.batch)
            done = set(cursors)
            for stream, entries in _by_stream(replies):
                if entries:
                    skip = applied.get(stream, ())
                    self._apply(stream, [e for e in entries if e[0] not in skip])
                    pending[stream].update(e[0] for e in entries)
                    cursors[stream] = entries[-1][0]
                    done.discard(stream)
            for stream in done:
                del cursors[stream]
        return pending

    def _skip_redelivered(self, client: redis.Redis,
                          forgotten: dict[bytes, set[bytes]]) -> None:
        """Entries applied, not acknowledged, and no longer delivered to this consumer: Redis
        failed over to a replica that their delivery had not reached. The group delivers them
        again as new ones, oldest first: read up to the newest of them, skip them and apply
        the rest. (Entries a checkpoint acknowledged on its lost way back never come again.)"""
        for stream, ids in forgotten.items():
            self.unacked[stream] = [i for i in self.unacked[stream] if i not in ids]
            newest = max(_order(i) for i in ids)
            while True:
                reply = client.xreadgroup(self.group, self.consumer, {stream: ">"},
                                          count=self.batch)
                entries = [entry for _, batch in _by_stream(reply) for entry in batch]
                if not entries:
                    break
                self.unacked[stream] += [e[0] for e in entries if e[0] in ids]
                self._apply(stream, [e for e in entries if e[0] not in ids])
                if _order(entries[-1][0]) >= newest:
                    break

    def _apply(self, stream: bytes, entries: list) -> None:
        """Apply entries ([id, fields]); an entry trimmed away while pending has no fields, and
        only its acknowledgement is left to do. The ids are listed for the checkpoint first:
        entries whose applying failed are never applied a second time."""
        route, name = self.streams[stream]
        if entries:  # in id order: the last is the newest
            newest = _order(entries[-1][0])
            if newest > self.last_ids.get(stream, (0, 0)):
                self.last_ids[stream] = newest
        self.unacked[stream] += [entry[0] for entry in entries]
        with self.store.lock:
            self.read.inc((name,), len(entries))
        self.dispatcher.dispatch_many(
            route, name,
            [f[1] if f.__class__ is list and f[0] == b"data" else _data(f) for _, f in entries])

    def _claim(self, client: redis.Redis) -> None:
        """Take over entries idle in other consumers' pending lists. XPENDING names each entry's
        owner, so this consumer's own entries (applied and waiting for a checkpoint, or read
        ahead and not yet applied) are never taken again, as XAUTOCLAIM would."""
        me = self.consumer.encode()
        for stream, (_, name) in self.streams.items():
            start: Any = "-"
            while True:
                idle: list[Any] = client.xpending_range(stream, self.group, start, "+",
                                                        self.batch, idle=self.claim_idle_ms)
                theirs: list[Any] = [p["message_id"] for p in idle if p["consumer"] != me]
                if theirs:
                    entries = client.xclaim(stream, self.group, self.consumer,
                                            self.claim_idle_ms, theirs)
                    self._apply(stream, entries)
                    with self.store.lock:
                        self.claimed.inc((name,), len(entries))
                if len(idle) < self.batch:
                    break
                start = b"(" + idle[-1]["message_id"]

    def _checkpoint(self, client: redis.Redis) -> None:
        """Persist the state and acknowledge exactly the entries it includes, atomically: this
        consumer's whole pending list, so no XREADGROUP may be in flight. A stream whose group
        vanished meanwhile answers with an error: its pending list went with it."""
        acks = {s: ids for s, ids in self.unacked.items() if ids}
        if acks or self.unsaved:
            with self.store.lock:
                blob = orjson.dumps(self.store.dump())
            pipe = client.pipeline(transaction=True)
            pipe.set(self.checkpoint_key, blob)
            for stream in acks:
                pipe.xgroup_delconsumer(stream, self.group, self.consumer)
            pipe.role()
            try:
                stored, *acked, role = pipe.execute(raise_on_error=False)
                if isinstance(stored, Exception):
                    raise stored
                replicated = self._replicated(client, role)
            except Exception:
                with self.store.lock:
                    self.checkpoints.inc(("error",))
                raise
            with self.store.lock:
                self.checkpoints.inc(("ok" if replicated else "unreplicated",))
                for stream, count in zip(acks, acked):
                    if isinstance(count, int):
                        self.acked.inc((name_text(stream),), count)
            for (stream, ids), count in zip(acks.items(), acked):
                if isinstance(count, int) and count != len(ids):
                    log.warning("%s: acknowledged %d pending entries, %d applied: does another "
                                "process read as consumer %s?", name_text(stream), count,
                                len(ids), self.consumer)
                self.unacked[stream] = []
            self.unsaved = False
        self._report_groups(client)

    def _replicated(self, client: redis.Redis, role: list | Exception) -> bool:
        """Wait for a replica to have the checkpoint: a failover to one it had not reached
        would deliver again, as pending, entries the state counts. Sentinel promotes the
        replica furthest ahead, so one is enough; a replica that has just dropped off gets one
        checkpoint's wait too (it may be reconnecting, and a failover may promote it). False
        when none confirmed in time: the checkpoint stands on the master alone."""
        replicas = len(role[2]) if not isinstance(role, Exception) and role[0] == b"master" else 0
        dropped, self._had_replicas = self._had_replicas and not replicas, bool(replicas)
        if not self.replica_wait_ms or not (replicas or dropped):
            return True
        if client.wait(1, self.replica_wait_ms):
            return True
        throttled("unreplicated", logging.WARNING,
                  "checkpoint %s: no replica confirmed it within %d ms; a failover before one "
                  "does would count its entries twice", self.checkpoint_key, self.replica_wait_ms)
        return False

    def _report_groups(self, client: redis.Redis) -> None:
        for stream, (_, name) in self.streams.items():
            for group in client.xinfo_groups(stream):
                if group["name"] in (self.group, self.group.encode()):
                    with self.store.lock:
                        self.pending.set((name,), float(group["pending"]))
                        if group.get("lag") is not None:
                            self.lag.set((name,), float(group["lag"]))


def _rehearse(store: Store, snapshot: Any) -> None:
    """Load a checkpoint into an empty store with the same families: content that does not fit
    raises there, before the real store is touched."""
    if not isinstance(snapshot, dict):
        raise TypeError(f"a checkpoint is a JSON object, not {type(snapshot).__name__}")
    scratch = Store()
    with store.lock:
        shapes = [(f.name, f.kind, f.help, f.labelnames, f.bounds or None, f.source)
                  for f in store.families.values()]
    for name, kind, help, labelnames, bounds, source in shapes:
        scratch.family(name, kind, help, labelnames, bounds, source=source)
    scratch.load(snapshot)


def _by_stream(replies: dict | list | None) -> Iterable[tuple[bytes, list]]:
    """A raw XREADGROUP reply as (stream, entries): a map in RESP3, pairs in RESP2."""
    if not replies:
        return ()
    return replies.items() if isinstance(replies, dict) else replies


def _order(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (b"ms-seq") as something that sorts as Redis sorts them."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _data(fields: list[bytes] | dict[bytes, bytes] | None) -> bytes | None:
    """The `data` field of an entry, from a raw field list or redis-py's dict (XCLAIM): None for
    an entry trimmed away while pending (nothing left but its acknowledgement), NO_DATA for one
    without the field (counted invalid)."""
    if not fields:
        return None
    if isinstance(fields, dict):
        return fields.get(b"data", NO_DATA)
    if fields[0] == b"data":
        return fields[1]
    return dict(zip(fields[::2], fields[1::2])).get(b"data", NO_DATA)
