"""Supervision without servers: the loop that survives anything, the error labels, and the
scrape-time gauges that must never contradict each other."""
from __future__ import annotations

import threading

import orjson
import pytest
import redis

from exporter.dispatcher import Dispatcher
from exporter.sources import RedisSource
from exporter.sources.health import RedisHealth, error_name
from exporter.sources.streams import StreamsSettings, StreamsSource, _rehearse
from exporter.store import Store
from tests.support.procs import parse_samples

UNREACHABLE = "redis://127.0.0.1:1/0"  # never connected to: the sessions below do no I/O


@pytest.mark.parametrize("exc, name", [
    (redis.ResponseError("NOGROUP No such key 'events:tasks:updates' or consumer group"), "NOGROUP"),
    (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
     "WRONGTYPE"),
    (redis.ResponseError("UNBLOCKED the stream key no longer exists"), "UNBLOCKED"),
    (redis.exceptions.NoPermissionError("this user has no permissions", status_code="NOPERM"),
     "NOPERM"),
    (redis.ResponseError("SOMEMODULE said no, with a message that must not become a label"),
     "ResponseError"),
    (redis.ConnectionError("Connection refused"), "ConnectionError"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "UnicodeDecodeError"),
    (KeyError("events:x"), "KeyError"),
])
def test_errors_are_named_by_redis_code_or_class_never_by_message(exc, name):
    assert error_name(exc) == name


class Scripted(RedisSource):
    """A source whose sessions fail as scripted; the last one stops the loop."""

    name = "scripted"

    def __init__(self, health: RedisHealth, failures: list[BaseException]) -> None:
        super().__init__(UNREACHABLE, health)
        self.failures = failures
        self.sessions = 0

    def session(self, client: redis.Redis, stop: threading.Event) -> None:
        self.sessions += 1
        self.live()
        if self.failures:
            raise self.failures.pop(0)
        stop.set()


class NoWait(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:  # backoff without sleeping
        return self.is_set()


def errors(store: Store) -> dict[tuple[str, ...], float]:
    return {k: s.value for k, s in store.families["agent_exporter_source_errors_total"].series.items()}


def test_no_failure_ends_the_reader_thread():
    store = Store()
    health = RedisHealth(store, UNREACHABLE)
    failures: list[BaseException] = [RuntimeError("a bug"), KeyError("k"), redis.TimeoutError(),
                                      redis.ResponseError("NOGROUP gone"), UnicodeDecodeError(
                                          "utf-8", b"\xff", 0, 1, "bad"), SystemExit(3)]
    source = Scripted(health, failures)
    source.run(NoWait())
    assert source.sessions == 7
    assert errors(store) == {("scripted", name): 1.0 for name in
                             ("RuntimeError", "KeyError", "TimeoutError", "NOGROUP",
                              "UnicodeDecodeError", "SystemExit")}
    assert store.families["agent_exporter_redis_reconnects_total"].series[()].value == 6


def scrape(health: RedisHealth) -> dict:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(health)
    return parse_samples(generate_latest(registry).decode())


def test_redis_up_is_never_1_while_a_source_is_down():
    health = RedisHealth(Store(), UNREACHABLE)
    one, two = Scripted(health, []), Scripted(health, [])
    two.name = "other"
    health.responsive = True
    one._ready = two._ready = True
    s = scrape(health)
    assert s[("agent_exporter_redis_up", frozenset())] == 1
    assert s[("agent_exporter_source_up", frozenset({("source", "other")}))] == 1

    two._ready = False  # its session ended
    s = scrape(health)
    assert s[("agent_exporter_redis_up", frozenset())] == 0
    assert s[("agent_exporter_source_up", frozenset({("source", "other")}))] == 0
    assert s[("agent_exporter_source_up", frozenset({("source", "scripted")}))] == 1

    two._ready = True
    health.responsive = False  # Redis stopped answering the PING: nobody reads
    s = scrape(health)
    assert s[("agent_exporter_redis_up", frozenset())] == 0
    assert {v for (name, _), v in s.items() if name == "agent_exporter_source_up"} == {0}

    health.responsive = True
    two.gather.last -= 60  # its reader has not come back from a read for a minute: stuck
    s = scrape(health)
    assert s[("agent_exporter_source_up", frozenset({("source", "other")}))] == 0
    assert s[("agent_exporter_redis_up", frozenset())] == 0


def test_a_checkpoint_that_does_not_fit_fails_its_rehearsal_and_leaves_the_store_alone():
    store = Store()
    family = store.family("agent_tasks_total", "counter", "Tasks.", ["agent", "status"])
    bad = orjson.loads(orjson.dumps(
        {"agent_tasks_total": {"rows": [[["old", "done"], 5, 0], [["x", "done"], "five", 0]]}}))
    with pytest.raises(ValueError):
        _rehearse(store, bad)
    with pytest.raises(TypeError):
        _rehearse(store, [1, 2])
    assert family.series == {}
    good = {"agent_tasks_total": {"rows": [[["old", "done"], 5, 0]]}}
    _rehearse(store, good)
    assert family.series == {}  # a rehearsal only


class CheckpointClient:
    """Answers GET of the checkpoint key with a value or an exception."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def get(self, key: str) -> object:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def streams_source(store: Store) -> StreamsSource:
    return StreamsSource(UNREACHABLE, {}, Dispatcher(store, {}, 1000), RedisHealth(store, UNREACHABLE),
                         store, StreamsSettings(), "c1")


@pytest.mark.parametrize("failure", [redis.ConnectionError("lost"), redis.TimeoutError("slow"),
                                     redis.exceptions.NoPermissionError("no", status_code="NOPERM")])
def test_a_checkpoint_that_cannot_be_fetched_is_tried_again_not_skipped(failure):
    store = Store()
    source = streams_source(store)
    with pytest.raises(type(failure)):
        source._restore(CheckpointClient(failure))  # the session ends; the next one tries again
    assert errors(store) == {} and not source.unsaved


@pytest.mark.parametrize("answer", [b"not json", b"[]", redis.ResponseError("WRONGTYPE a hash")])
def test_a_checkpoint_whose_content_cannot_be_loaded_is_skipped_once(answer):
    store = Store()
    source = streams_source(store)
    source._restore(CheckpointClient(answer))
    assert errors(store) == {("streams", "UnreadableCheckpoint"): 1.0}
    assert source.unsaved  # the next checkpoint replaces it


class PingClient:
    def __init__(self, failure: BaseException | None) -> None:
        self.failure = failure

    def ping(self) -> bool:
        if self.failure is not None:
            raise self.failure
        return True


@pytest.mark.parametrize("failure, responsive", [
    (None, True),
    (redis.exceptions.NoPermissionError("no", status_code="NOPERM"), True),  # an answer
    (redis.ResponseError("BUSY Redis is busy running a script."), False),
    (redis.exceptions.BusyLoadingError("loading"), False),
    (redis.TimeoutError("Timeout reading from socket"), False),
    (redis.ConnectionError("refused"), False),
])
def test_redis_is_responsive_while_it_answers_the_ping(failure, responsive):
    health = RedisHealth(Store(), UNREACHABLE)
    health.responsive = not responsive
    health._check(PingClient(failure))
    assert health.responsive is responsive
