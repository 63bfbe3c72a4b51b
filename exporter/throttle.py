"""Logging that repeats itself at most once a minute per key.

A failure that happens on every event or every scrape (a malformed publisher, a broken GPU, a
Redis outage) must be said, but once, not ten thousand times a second.
"""
from __future__ import annotations

import logging
import time
from typing import Any

EVERY_SECONDS = 60.0


class Throttled:
    """`log(key, level, message, *args)` logs unless the same key was logged in the last minute;
    `exc_info` adds a traceback (for failures that are bugs)."""

    def __init__(self, logger: logging.Logger, every: float = EVERY_SECONDS) -> None:
        self.logger = logger
        self.every = every
        self._last: dict[object, float] = {}

    def __call__(self, key: object, level: int, message: str, *args: Any,
                 exc_info: BaseException | None = None) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -self.every) < self.every:
            return False
        if len(self._last) > 10_000:  # keys come from bounded sets; this is only a backstop
            self._last.clear()
        self._last[key] = now
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True
