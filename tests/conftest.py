"""Shared fixtures. Real services only: PostgreSQL for the postgres store, a real Granian process
for end-to-end tests. Under CI=true a missing service fails the run instead of skipping."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import redis.asyncio as aioredis

from orderfast import _core
from orderfast.domain.orders import Order, utc_now_ms
from orderfast.domain.plans import Change, TransitionPlan, plan_change
from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.store.base import Store
from orderfast.store.postgres import PostgresStore
from orderfast.store.sqlite import SqliteStore

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_DSN = os.environ.get("ORDERFAST_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")
JWT_SECRET = "test-secret-" + "x" * 40
WEBHOOK_SECRET = "whsec-test-" + "w" * 32


def planned(decide: Callable[[Order], Change]) -> Callable[[Order], TransitionPlan]:
    """A decision as the store takes it: the plan of its writes, now, with fresh ids."""
    return lambda order: plan_change(order, decide(order), at=utc_now_ms(), new_id=_core.new_order_id)


def unavailable(what: str) -> None:
    """Skip locally, fail in CI: a missing service must never pass as green there."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but unavailable", pytrace=False)
    pytest.skip(f"{what} unavailable")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a coroutine to completion on its own loop in a helper thread, so that session set-up
    works even when first requested from inside an async test's running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _with_db(dsn: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_blocking(run)


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        _with_db(PG_ADMIN_DSN, "SELECT 1")
    except (OSError, asyncpg.PostgresError) as e:
        unavailable(f"PostgreSQL at {PG_ADMIN_DSN} ({e})")
    return PG_ADMIN_DSN


@pytest.fixture(scope="session")
def pg_database_factory(pg_server: str) -> Iterator[object]:
    """Creates throwaway databases (dropped at the end of the session); returns their DSNs."""
    created: list[str] = []
    base = pg_server.rsplit("/", 1)[0]

    def create() -> str:
        name = f"orderfast_test_{secrets.token_hex(4)}"
        _with_db(pg_server, f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{base}/{name}"

    yield create
    for name in created:
        _with_db(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TABLES = (
    "idempotency_keys, outbox, refunds, payment_events, order_lines, orders, products, coupons, promotions, "
    "customer_restrictions"
)


@pytest.fixture(scope="session")
def contract_pg_dsn(pg_database_factory: Callable[[], str]) -> str:
    dsn = pg_database_factory()

    async def migrate() -> None:
        store = PostgresStore(dsn, min_size=1, max_size=2)
        await store.open(check_schema=False)
        await store.migrate()
        await store.close()

    run_blocking(migrate)
    return dsn


async def _empty_pg_store(dsn: str) -> PostgresStore:
    """A store on the session's migrated database, every table emptied first."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"TRUNCATE {TABLES}")
    await conn.close()
    return PostgresStore(dsn, min_size=1, max_size=8)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The same contract suite runs against every store; PostgreSQL is a real server."""
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "contract.db")
        await s.open(check_schema=False)
        await s.migrate()
    else:
        s = await _empty_pg_store(request.getfixturevalue("contract_pg_dsn"))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def pg_store(contract_pg_dsn: str) -> AsyncIterator[PostgresStore]:
    """PostgreSQL alone, for behaviour only a multi-writer database has."""
    s = await _empty_pg_store(contract_pg_dsn)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


REDIS_URL = os.environ.get("ORDERFAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        unavailable(f"Redis at {REDIS_URL} ({e})")
    return REDIS_URL


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[RedisStreamsPublisher]:
    """A Redis Streams publisher on a stream prefix of its own, its stream removed afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    pub = RedisStreamsPublisher.from_url(redis_url, maxlen=100_000, prefix=prefix)
    try:
        yield pub
    finally:
        client = aioredis.Redis.from_url(redis_url)
        await client.delete(f"{prefix}order")
        await client.aclose()
        await pub.close()
