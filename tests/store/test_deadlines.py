"""The request budget and the breaker, on a real PostgreSQL: a call that cannot finish in time fails
as ``StoreUnavailable`` (saying whether the database may have applied it) soon after the deadline,
never later; a create-order queued past its deadline is never written; the pool survives; the
breaker fails fast while the database is away and closes again once a probe gets through.

Stalls are made with row locks held by another connection (a lock wait is what a frozen primary
looks like to a client: a statement that does not come back); outages with a TCP proxy that is cut."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from orderfast.resilience import deadline
from orderfast.resilience.breaker import CLOSED, OPEN, Breaker
from orderfast.store.base import Created, Duplicate, StoreUnavailable, TransitionPlan
from orderfast.store.group_commit import GroupCommit
from orderfast.store.postgres import PostgresStore
from tests.e2e.tcp_proxy import TcpProxy
from tests.store.test_contract import new_order, put

pytestmark = pytest.mark.anyio

BUDGET = 0.4
# How late a failure may come after the deadline: giving the connection back (at most
# RELEASE_FLOOR), the event loop, a loaded machine. Generous: what is checked is "bounded by the
# budget", not a speed.
SLACK = 1.0


@pytest.fixture
def budget() -> Iterator[None]:
    before = deadline.BUDGET
    deadline.configure(BUDGET)
    yield
    deadline.configure(before)


@asynccontextmanager
async def product_locked(dsn: str, sku: str) -> AsyncIterator[None]:
    """Another session holds the product's row lock: a write that reserves its stock waits."""
    conn = await asyncpg.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT 1 FROM products WHERE sku = $1 FOR UPDATE", sku)
        yield
        await tx.rollback()
    finally:
        await conn.close()


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.01)):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def lock_waiters(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        n = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    finally:
        await conn.close()
    return bool(n)


async def in_request(call: object, left: float | None = None) -> object:
    """Runs ``call()`` as a request would: with the budget's clock started (the HTTP layer does it),
    or with ``left`` seconds of it left."""
    token = deadline.start() if left is None else deadline.DEADLINE.set(asyncio.get_running_loop().time() + left)
    try:
        return await call()  # type: ignore[operator]
    finally:
        deadline.reset(token)


async def test_a_statement_still_running_at_the_deadline_is_cancelled(
    pg_store: PostgresStore, contract_pg_dsn: str, budget: None
) -> None:
    await put(pg_store, "SKU-A", stock=10)
    (created,) = await pg_store.create_orders([new := new_order()])
    assert isinstance(created, Created)

    def plan(order: object) -> TransitionPlan:
        raise AssertionError("never called: the lock wait times out first")

    conn = await asyncpg.connect(contract_pg_dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", new.order.id)
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await in_request(lambda: pg_store.change_order(new.order.id, plan))
            elapsed = time.monotonic() - started
    finally:
        await conn.close()
    assert caught.value.maybe_applied, "the statement had reached the database"
    assert BUDGET * 0.9 <= elapsed < BUDGET + SLACK
    # The pool is whole again: the next call works.
    assert await pg_store.get_order(new.order.id) is not None


async def test_waiting_for_a_pooled_connection_is_bounded(contract_pg_dsn: str, budget: None) -> None:
    store = PostgresStore(contract_pg_dsn, min_size=1, max_size=1, statement_timeout=BUDGET)
    await store.open()
    try:
        async with store.pool.acquire():  # the only connection, busy
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await in_request(lambda: store.get_order("00000000-0000-7000-8000-000000000000"))
            elapsed = time.monotonic() - started
        assert not caught.value.maybe_applied, "nothing was sent"
        assert BUDGET * 0.9 <= elapsed < BUDGET + SLACK
    finally:
        await store.close()


async def test_a_create_queued_past_its_deadline_is_never_written(
    pg_store: PostgresStore, contract_pg_dsn: str, budget: None
) -> None:
    pg_store.group = GroupCommit(pg_store._create_batch, max_batch=64, inflight=1)
    await put(pg_store, "HOT", stock=100)
    first, queued = (
        new_order(key="k-first", lines=(("HOT", 1, 500),)),
        new_order(key="k-queued", lines=(("HOT", 1, 500),)),
    )
    async with product_locked(contract_pg_dsn, "HOT"):
        writing = asyncio.create_task(in_request(lambda: pg_store.create_orders([first])))
        await until(lambda: lock_waiters(contract_pg_dsn), "the first batch waits on the lock")
        with pytest.raises(StoreUnavailable) as was_queued:
            # Its request arrived late in its budget: the deadline comes before the batch ahead ends.
            await in_request(lambda: pg_store.create_orders([queued]), left=BUDGET / 4)
        with pytest.raises(StoreUnavailable) as was_sent:
            await writing
    assert not was_queued.value.maybe_applied, "it never left the queue"
    assert was_sent.value.maybe_applied, "its batch was at the database"
    assert pg_store.group.batches == 1, "the queued order was taken out, not written later"
    assert await pg_store.get_order(queued.order.id) is None
    # The retry of each tells the truth: the order with its key exactly once.
    for new in (first, queued):
        (outcome,) = await pg_store.create_orders([new])
        assert isinstance(outcome, Created | Duplicate)
        (again,) = await pg_store.create_orders([new])
        assert isinstance(again, Duplicate)


async def test_the_breaker_fails_fast_while_the_database_is_away_and_closes_after_it_returns(
    contract_pg_dsn: str, budget: None
) -> None:
    host_port = contract_pg_dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "5432")
    proxy = TcpProxy(host, int(port))
    dsn = contract_pg_dsn.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/")
    breaker = Breaker("postgresql", failures=3, cooldown=0.3)
    store = PostgresStore(dsn, min_size=1, max_size=2, statement_timeout=BUDGET, breaker=breaker)
    await store.open()
    unknown = "00000000-0000-7000-8000-000000000000"
    try:
        proxy.cut()
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                await store.get_order(unknown)
        assert breaker.state == OPEN
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="circuit breaker open"):
            await store.get_order(unknown)
        assert time.monotonic() - started < 0.05, "an open breaker does not touch the network"
        proxy.restore()
        # Within a cooldown or so, one call goes through as the probe, succeeds, and closes it.
        give_up = time.monotonic() + 10
        while True:
            try:
                assert await store.get_order(unknown) is None
                break
            except StoreUnavailable as e:
                assert "circuit breaker open" in str(e)
                assert time.monotonic() < give_up, "the breaker never closed"
                await asyncio.sleep(0.05)
        assert breaker.state == CLOSED
    finally:
        await store.close()
        proxy.close()
