"""Persistence: one Store contract (``base``), PostgreSQL and SQLite behind it."""

from __future__ import annotations

from orderfast.config import Settings
from orderfast.resilience.breaker import Breaker
from orderfast.store.base import Store


def make_store(settings: Settings, *, budget: bool = True) -> Store:
    """The store the settings select: PostgreSQL when a database URL is set, else SQLite.
    ``budget``: statements are bounded by the request budget (False: migrations, reconcile)."""
    if settings.database_url is not None:
        from orderfast.store.postgres import PostgresStore

        return PostgresStore(
            settings.database_url.reveal(),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            group_max=settings.group_commit_max,
            group_inflight=settings.group_commit_inflight,
            statement_timeout=settings.request_timeout if budget else None,
            breaker=Breaker("postgresql", failures=settings.breaker_failures, cooldown=settings.breaker_cooldown),
            read_dsns=settings.database_read_url.reveal().split(",") if settings.database_read_url and budget else (),
            read_max_lag=settings.read_max_lag,
        )
    from orderfast.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path, group_max=settings.group_commit_max)
