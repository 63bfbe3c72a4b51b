"""Redis-state collector (placeholder until key checks land)."""
from __future__ import annotations

from typing import Any

DEFAULT_KEY_CHECKS: list[dict[str, Any]] = []


def parse_key_checks(value: Any, key: str, origin: str) -> list[Any]:
    return list(value)
