"""What a store call costs in round trips to PostgreSQL, counted by a TCP proxy in front of a real
server: one per statement the call needs, and none for giving the connection back to the pool —
with the one thing a reset is for still done (a transaction its caller left open is rolled back
before the connection serves anyone else)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from orderfast.store.base import Created
from orderfast.store.postgres import PostgresStore
from tests.e2e.tcp_proxy import TcpProxy
from tests.store.test_contract import new_order, put

pytestmark = pytest.mark.anyio

UNKNOWN = "00000000-0000-7000-8000-000000000000"


@pytest.fixture
async def proxied(pg_store: PostgresStore, contract_pg_dsn: str) -> AsyncIterator[tuple[PostgresStore, TcpProxy]]:
    """A one-connection store on the (emptied) contract database, through a counting proxy."""
    host_port = contract_pg_dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1) if ":" in host_port else (host_port, "5432")
    proxy = TcpProxy(host, int(port))
    store = PostgresStore(
        contract_pg_dsn.replace(f"@{host_port}/", f"@127.0.0.1:{proxy.port}/"),
        min_size=1,
        max_size=1,
        statement_timeout=5.0,
    )
    await store.open()
    try:
        yield store, proxy
    finally:
        await store.close()
        proxy.close()


async def requests_for(proxy: TcpProxy, call: object) -> int:
    before = proxy.requests
    await call  # type: ignore[misc]
    return proxy.requests - before


async def test_a_read_is_one_round_trip(proxied: tuple[PostgresStore, TcpProxy]) -> None:
    store, proxy = proxied
    await store.get_order(UNKNOWN)  # the first use of a statement also prepares it
    assert await requests_for(proxy, store.get_order(UNKNOWN)) == 1


async def test_a_batch_of_orders_is_one_round_trip(proxied: tuple[PostgresStore, TcpProxy]) -> None:
    store, proxy = proxied
    await put(store, "RT-A", stock=100)
    (first,) = await store.create_orders([new_order(key="rt-0", lines=(("RT-A", 1, 500),))])
    assert isinstance(first, Created)
    batch = [new_order(key=f"rt-{i}", lines=(("RT-A", 1, 500),)) for i in range(1, 6)]
    before = proxy.requests
    outcomes = await store.group._run(batch)  # one batch, as the group commit sends it
    assert all(isinstance(o, Created) for o in outcomes)
    assert proxy.requests - before == 1


async def test_a_transaction_left_open_is_rolled_back_before_the_next_caller(
    proxied: tuple[PostgresStore, TcpProxy],
) -> None:
    store, _ = proxied
    started = asyncio.Event()

    async def abandoned() -> None:
        async with store.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("CREATE TEMP TABLE left_behind (x int) ON COMMIT DROP")
            started.set()
            await asyncio.Event().wait()  # cancelled here, its transaction still open

    task = asyncio.create_task(abandoned())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.pool.acquire() as conn:  # the same connection: the pool holds one
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
    assert await store.get_order(UNKNOWN) is None
