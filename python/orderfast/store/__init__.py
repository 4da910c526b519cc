"""Persistence: one Store contract (``base``), PostgreSQL and SQLite behind it."""

from __future__ import annotations

import asyncpg

from orderfast.config import Settings
from orderfast.store.base import Store

# Errors that mean the database could not be reached or is going away — not a bug, and a retry
# (same Idempotency-Key) may well succeed: network failures, pool and statement timeouts,
# connections closed under a query, a server shutting down or not yet accepting connections.
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


def make_store(settings: Settings) -> Store:
    """The store the settings select: PostgreSQL when a database URL is set, else SQLite."""
    if settings.database_url is not None:
        from orderfast.store.postgres import PostgresStore

        return PostgresStore(
            settings.database_url.reveal(),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            group_max=settings.group_commit_max,
            group_inflight=settings.group_commit_inflight,
        )
    from orderfast.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path, group_max=settings.group_commit_max)
