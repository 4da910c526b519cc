"""Group commit: concurrent create-orders share PostgreSQL transactions, each order still on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from orderfast.store.base import Created
from orderfast.store.group_commit import GroupCommit
from orderfast.store.postgres import PostgresStore
from tests.store.test_contract import new_order, put, stock

pytestmark = pytest.mark.anyio


async def test_orders_arriving_together_share_one_transaction(pg_store: PostgresStore) -> None:
    pg_store.group = GroupCommit(pg_store._create_batch, max_batch=64, inflight=1)
    await put(pg_store, "HOT", stock=1000)
    orders = [new_order(customer=f"c-{i}", lines=(("HOT", 1, 100),)) for i in range(40)]
    outcomes = await asyncio.gather(*(pg_store.create_orders([n]) for n in orders))
    assert [o for (o,) in outcomes] == [Created(n.order.id) for n in orders]
    # All 40 are queued before the writer first runs: one transaction, one commit.
    assert (pg_store.group.batches, pg_store.group.items) == (1, 40)
    assert await stock(pg_store, "HOT") == 960
    assert all(await asyncio.gather(*(pg_store.get_order(n.order.id) for n in orders)))


async def test_max_batch_bounds_a_transaction(pg_store: PostgresStore) -> None:
    pg_store.group = GroupCommit(pg_store._create_batch, max_batch=8, inflight=1)
    await put(pg_store, "SKU-A", stock=1000)
    orders = [new_order(customer=f"c-{i}", key=f"k-{i}") for i in range(25)]
    await asyncio.gather(*(pg_store.create_orders([n]) for n in orders))
    assert pg_store.group.batches == 4, "1, then 8 + 8 + 8"


def runner(
    log: list[list[str]], gate: asyncio.Event | None = None, writing: asyncio.Event | None = None
) -> GroupCommit[str, str]:
    async def run(batch: Sequence[str]) -> list[str]:
        log.append(list(batch))
        if writing is not None:
            writing.set()
        await asyncio.sleep(0)
        if gate is not None:
            await gate.wait()
        if "bad" in batch:
            raise RuntimeError("constraint broken")
        return [f"ok:{item}" for item in batch]

    return GroupCommit(run, max_batch=10, inflight=1)


async def test_orders_arriving_during_a_write_go_together_in_the_next() -> None:
    log: list[list[str]] = []
    gate, writing = asyncio.Event(), asyncio.Event()
    group = runner(log, gate, writing)
    first = asyncio.create_task(group.submit(["a"]))
    await writing.wait()  # the write of "a" has begun
    rest = [asyncio.create_task(group.submit([x])) for x in "bcd"]
    await asyncio.sleep(0)
    assert log == [["a"]], "one write at a time: the others wait"
    gate.set()
    assert await first == ["ok:a"]
    assert await asyncio.gather(*rest) == [["ok:b"], ["ok:c"], ["ok:d"]]
    assert log == [["a"], ["b", "c", "d"]]
    assert (group.batches, group.items) == (2, 4)


async def test_the_next_batch_goes_out_before_the_last_batchs_callers_run() -> None:
    """The writer does not wait its turn in the event loop behind the callers it has just answered:
    under load that wait was time in which the database had nothing to do."""
    log: list[str] = []
    gate, writing = asyncio.Event(), asyncio.Event()

    async def run(batch: Sequence[str]) -> list[str]:
        log.append("write " + ",".join(batch))
        writing.set()
        await gate.wait()
        return list(batch)

    group: GroupCommit[str, str] = GroupCommit(run, max_batch=10, inflight=1)

    async def caller(item: str) -> None:
        await group.submit([item])
        log.append("answered " + item)

    first = asyncio.create_task(caller("a"))
    await writing.wait()
    second = asyncio.create_task(caller("b"))
    await asyncio.sleep(0)  # "b" is queued behind the write of "a"
    gate.set()
    await asyncio.gather(first, second)
    assert log == ["write a", "write b", "answered a", "answered b"]


async def test_a_batch_that_raises_is_retried_order_by_order() -> None:
    log: list[list[str]] = []
    group = runner(log)
    results = await asyncio.gather(*(group.submit([x]) for x in ["a", "b", "bad", "c"]), return_exceptions=True)
    assert results[0] == ["ok:a"] and results[1] == ["ok:b"] and results[3] == ["ok:c"]
    assert isinstance(results[2], RuntimeError), "only the bad order fails"
    # All four arrived before the first write: one batch, then each order alone.
    assert log[0] == ["a", "b", "bad", "c"] and sorted(map(tuple, log[1:])) == [("a",), ("b",), ("bad",), ("c",)]


async def test_a_caller_that_goes_away_leaves_its_order_in_the_batch() -> None:
    log: list[list[str]] = []
    writing = asyncio.Event()
    group = runner(log, writing=writing)
    first = asyncio.create_task(group.submit(["x"]))
    leaver = asyncio.create_task(group.submit(["y"]))
    await writing.wait()  # the batch that carries both is being written
    leaver.cancel()
    assert await first == ["ok:x"]
    with pytest.raises(asyncio.CancelledError):
        await leaver
    assert log == [["x", "y"]], "the order was written although its caller left"


async def test_a_batch_of_one_is_one_order_per_commit(pg_store: PostgresStore) -> None:
    pg_store.group = GroupCommit(pg_store._create_batch, max_batch=1, inflight=1)
    await put(pg_store, "SKU-A", stock=5)
    orders = [new_order(customer=f"c-{i}", key=f"k-{i}", lines=(("SKU-A", 1, 500),)) for i in range(7)]
    outcomes = [o for (o,) in await asyncio.gather(*(pg_store.create_orders([n]) for n in orders))]
    assert sum(isinstance(o, Created) for o in outcomes) == 5 and pg_store.group.batches == 7
    assert await stock(pg_store, "SKU-A") == 0
