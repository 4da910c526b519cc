"""The embedded default store: one SQLite file."""

from orderfast.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
