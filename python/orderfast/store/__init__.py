"""Persistence: one Store contract (``base``), PostgreSQL and SQLite behind it."""

from __future__ import annotations

from orderfast.config import Settings
from orderfast.store.base import Store


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
