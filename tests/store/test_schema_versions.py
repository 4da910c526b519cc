"""Which schema a release serves: not an older one (it says to migrate), but a newer one — during a
rollout, or after a rollback, the previous release runs on the next one's expanded schema."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from orderfast.store import migrations
from orderfast.store.base import SchemaOutOfDate, Store
from orderfast.store.postgres import PostgresStore
from orderfast.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_newer_schema_is_served_and_an_older_one_refused(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dialect = "sqlite" if kind == "sqlite" else "postgres"
    latest = migrations.latest(dialect)
    if kind == "sqlite":
        path = tmp_path / "versions.db"

        def make() -> Store:
            return SqliteStore(path)

        async def execute(sql: str) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(sql)
    else:
        dsn = request.getfixturevalue("pg_database_factory")()

        def make() -> Store:
            return PostgresStore(dsn, min_size=1, max_size=2)

        async def execute(sql: str) -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

    store = make()
    await store.open(check_schema=False)
    await store.migrate()
    await store.close()
    # The next release added a migration (an expansion): this release still serves, and says so.
    columns = "(version, name, applied_at)" if kind == "sqlite" else "(version, name)"
    values = f"({latest + 1}, 'next_release', 0)" if kind == "sqlite" else f"({latest + 1}, 'next_release')"
    await execute(f"INSERT INTO schema_migrations {columns} VALUES {values}")
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    logging.getLogger("orderfast.store").addHandler(handler)
    try:
        store = make()
        await store.open()
        await store.close()
    finally:
        logging.getLogger("orderfast.store").removeHandler(handler)
    assert any("newer than this release" in r.getMessage() for r in warnings)
    # A schema older than the code: refused, with what to do.
    await execute(f"DELETE FROM schema_migrations WHERE version >= {latest}")
    store = make()
    with pytest.raises(SchemaOutOfDate, match="run `orderfast migrate`"):
        await store.open()
    await store.close()
