"""How SQLite holds what it has no type for: timestamps as integer ms, lists as JSON text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(ts: datetime) -> int:
    # Integer arithmetic throughout: a float detour could shift a millisecond.
    return (ts - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def opt_ms(ts: datetime | None) -> int | None:
    return None if ts is None else to_ms(ts)


def opt_from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def to_json_list(items: tuple[str, ...] | None) -> str | None:
    return None if items is None else orjson.dumps(list(items)).decode()


def from_json_list(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(orjson.loads(text))
