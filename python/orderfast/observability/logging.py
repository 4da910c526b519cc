"""Structured logs: one JSON object per line on stderr, ready for any log shipper.

An exception is logged as its type, a message and its frames (``file:line in function``) — never
the source lines of a traceback (they may hold SQL) nor a database error's message (it may hold
SQL or row data): for those, the SQLSTATE is enough to know what happened.
"""

from __future__ import annotations

import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

from orderfast.observability import tracing

MAX_FRAMES = 30
MAX_MESSAGE = 500

# The request being handled (its X-Request-Id): every log line written while handling it carries it.
REQUEST_ID: ContextVar[str | None] = ContextVar("orderfast_request_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        if tracing.ENABLED and (ids := tracing.ids()) is not None:
            entry["trace_id"], entry["span_id"] = ids
        fields = getattr(record, "fields", None)  # structured extras: log.info(..., extra={"fields": {...}})
        if fields:
            entry.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            entry["exc"] = describe(record.exc_info[1])
        return orjson.dumps(entry).decode()


def describe(exc: BaseException) -> dict[str, Any]:
    """What a log line may say of an exception (and of what caused it)."""
    out: dict[str, Any] = {"type": _qualname(type(exc)), "msg": _message(exc), "frames": _frames(exc.__traceback__)}
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        out["cause"] = {"type": _qualname(type(cause)), "msg": _message(cause)}
    return out


def _qualname(cls: type) -> str:
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _message(exc: BaseException) -> str:
    module = type(exc).__module__
    if module.startswith(("asyncpg", "sqlite3")):
        code = getattr(exc, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
        return f"database error {code}" if code else "database error"
    return str(exc)[:MAX_MESSAGE]


def _frames(tb: TracebackType | None) -> list[str]:
    stack = traceback.StackSummary.extract(traceback.walk_tb(tb), limit=None, lookup_lines=False)
    return [f"{_short(f.filename)}:{f.lineno} in {f.name}" for f in stack[-MAX_FRAMES:]]


def _short(path: str) -> str:
    marker = path.rfind("site-packages/")
    return path[marker + len("site-packages/") :] if marker >= 0 else path.rsplit("/python/", 1)[-1]


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    ours = logging.getLogger("orderfast")
    ours.handlers[:] = [handler]
    ours.setLevel(level.upper())
    ours.propagate = False
    # Libraries log through the same formatter (asyncpg's pool, say, logs reconnect failures with
    # exc_info): warnings and worse, and never a traceback with source lines.
    for name in ("asyncpg", "redis", "starlette"):
        library = logging.getLogger(name)
        library.handlers[:] = [handler]
        library.setLevel(max(logging.WARNING, ours.level))
        library.propagate = False


def granian_config() -> dict[str, Any]:
    """Granian's own lines (start, workers, shutdown, the access log) in the same JSON shape, on
    stderr: a ``logging.config.dictConfig`` document for ``Server(log_dictconfig=...)``."""
    json = {"()": f"{__name__}.JsonFormatter"}
    stream = {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": json},
        "handlers": {"json": stream},
        "loggers": {
            "_granian": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }
