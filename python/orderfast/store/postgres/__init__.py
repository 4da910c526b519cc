"""The PostgreSQL store: asyncpg pool; asyncpg prepares and caches every statement per connection."""

from orderfast.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
