"""Event validation helpers shared by the domain handlers.

A handler reads and checks every field first and only then touches a metric, so an event that
fails any check raises `Invalid` before anything is applied: never half an event. orjson rejects
NaN, Infinity and numbers beyond float range while parsing, so every number here is finite.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, overload


class Invalid(Exception):
    """An event that does not fit its schema. `reason` is a bounded label value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def snake(name: str) -> str:
    """camelCase → snake_case: the contract accepts both spellings of every field."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@functools.cache
def twin(name: str) -> str:
    """The other spelling of a field name (computed once per name, not per event)."""
    return camel(name) if "_" in name else snake(name)


def raw(event: Mapping[str, Any], name: str) -> Any:
    """A field by its contract name, or by its camelCase/snake_case twin."""
    value = event.get(name)
    if value is None:
        value = event.get(twin(name))
    return value


@overload
def number(event: Mapping[str, Any], name: str, required: Literal[True],
           minimum: float | None = None, maximum: float | None = None) -> float: ...


@overload
def number(event: Mapping[str, Any], name: str, required: bool = False,
           minimum: float | None = None, maximum: float | None = None) -> float | None: ...


def number(event: Mapping[str, Any], name: str, required: bool = False,
           minimum: float | None = None, maximum: float | None = None) -> float | None:
    """A finite number (not a boolean) within bounds, or None when absent and optional."""
    value: Any = event.get(name)
    cls = value.__class__
    if (cls is float or cls is int) and (minimum is None or value >= minimum) \
            and (maximum is None or value <= maximum):
        return float(value)  # the common case, checked in one go
    if value is None:
        value = event.get(twin(name))
    if value is None:
        if required:
            raise Invalid("missing_field", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid("bad_type", f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if minimum is not None and value < minimum:
        raise Invalid("negative" if minimum == 0 else "out_of_range",
                      f"{name}={value} is below {minimum}")
    if maximum is not None and value > maximum:
        raise Invalid("out_of_range", f"{name}={value} is above {maximum}")
    return value


def measurement(event: Mapping[str, Any], name: str) -> float | None:
    """A number that may legitimately be NaN or infinite (a diverged training loss).

    JSON has no NaN, so it arrives as the string "NaN", "Infinity" or "-Infinity".
    """
    value = raw(event, name)
    if isinstance(value, str) and value.lower() in ("nan", "inf", "infinity", "-inf", "-infinity"):
        return float(value.lower().replace("infinity", "inf"))
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None if value is None else float(value)
    raise Invalid("bad_type", f"{name} must be a number, got {type(value).__name__}")


def flag(event: Mapping[str, Any], name: str, required: bool = False) -> bool | None:
    value = raw(event, name)
    if value is None:
        if required:
            raise Invalid("missing_field", f"{name} is required")
        return None
    if not isinstance(value, bool):
        raise Invalid("bad_type", f"{name} must be true or false, got {type(value).__name__}")
    return value


def label(event: Mapping[str, Any], name: str, limit: int, required: bool = True,
          default: str | None = None) -> str:
    """A string that becomes a label value: non-empty and at most `limit` characters."""
    value = event.get(name)
    if value.__class__ is str and 0 < len(value) <= limit:
        return value  # the common case, checked in one go
    if value is None:
        value = event.get(twin(name))
    if value is None or value == "":
        if default is not None:
            return default
        if required:
            raise Invalid("missing_field", f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise Invalid("bad_type", f"{name} must be a string, got {type(value).__name__}")
    check_label(name, value, limit)
    return value


def check_label(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise Invalid("label_too_long", f"{name} is {len(value)} characters (limit {limit})")


def timestamp(event: Mapping[str, Any]) -> float | None:
    """The event's optional timestamp as epoch seconds (ISO 8601, epoch s or epoch ms)."""
    value = event.get("timestamp")
    if value is None:
        return None
    if value.__class__ is float and 0 <= value <= 1e11:
        return value  # epoch seconds, as the publisher sends them
    if isinstance(value, bool):
        raise Invalid("bad_timestamp", "timestamp must be ISO 8601 or epoch seconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise Invalid("bad_timestamp", "timestamp must be a finite epoch time")
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise Invalid("bad_timestamp", f"timestamp {value[:40]!r} is not ISO 8601") from None
        if parsed.tzinfo is None:  # the seeds write UTC without an offset
            return (parsed - datetime(1970, 1, 1)).total_seconds()
        return parsed.timestamp()
    raise Invalid("bad_timestamp", "timestamp must be ISO 8601 or epoch seconds")
