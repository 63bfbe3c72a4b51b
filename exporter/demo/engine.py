"""The demo's clock: simulated seconds on an event heap, paced against the wall clock.

The heap is ordered by (time, insertion), so with one random.Random(seed) a run is one exact
sequence of events; `speed` compresses time for tests.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)


class Sim:
    """Simulated time: a heap of (when, order, action), run against the wall clock / speed."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._order), action))

    def after(self, delay: float, action: Callable[[], None]) -> None:
        self.at(self.now + delay, action)

    def every(self, period: float, action: Callable[[], None]) -> None:
        def tick() -> None:
            self.after(period, tick)  # first, so a failing action does not end the series
            action()
        self.after(period, tick)

    def poisson(self, rate: float, rng: random.Random, action: Callable[[], None]) -> None:
        """`action` at exponentially spaced times, `rate` per simulated second."""
        def tick() -> None:
            self.after(rng.expovariate(rate), tick)
            action()
        self.after(rng.expovariate(rate), tick)

    def run(self, until: float | None, stop: threading.Event) -> None:
        """Run actions on time until `until` (simulated) or `stop`. While Redis is unreachable
        simulated time stands still, one failed action a second, instead of bursting later."""
        start = time.monotonic()
        failing = False
        while self._heap and not stop.is_set():
            when, _, action = self._heap[0]
            if until is not None and when > until:
                return
            delay = start + when / self.speed - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            heapq.heappop(self._heap)
            self.now = when
            try:
                action()
                failing = False
            except redis.RedisError as exc:
                if not failing:
                    log.warning("demo: cannot publish (%s); dropping events, trying every "
                                "second", exc)
                failing = True
                if stop.wait(1.0):
                    return
                start = time.monotonic() - self.now / self.speed


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)
