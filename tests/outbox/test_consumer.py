"""The example consumer processes each event exactly once despite redelivery."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from orderfast.domain import lifecycle
from orderfast.outbox import example_consumer
from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.outbox.relay import Relay
from orderfast.store.base import Change
from orderfast.store.postgres import PostgresStore
from tests.conftest import planned
from tests.store.test_contract import new_order, put

pytestmark = pytest.mark.anyio


async def publish_paid_orders(
    store: PostgresStore, publisher: RedisStreamsPublisher, customers: list[str], *, again: slice
) -> None:
    """An order per customer in the list, each paid, every event relayed — and the events that
    ``again`` picks from the published ones (newest first) relayed a second time."""
    await put(store, "SKU-A", stock=1000)
    for customer in customers:
        new = new_order(customer=customer)
        await store.create_orders([new])
        await store.change_order(
            new.order.id, planned(lambda o: Change(transition=lifecycle.pay(o, o.total, o.currency)))
        )
    relay = Relay(store, publisher)
    while await relay.run_once():
        pass
    refs = await store.published_refs(100)
    await store.unpublish([pos for pos, _ in refs[again]])
    while await relay.run_once():
        pass


class Crash(Exception):
    """Stands for a consumer dying after its effects committed, before it acknowledged."""


async def test_each_event_counts_once_despite_redelivery(
    pg_store: PostgresStore, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    store = pg_store
    customers = ["alice", "bob"]
    # The relay publishes some events twice (at least once): the first four go out again.
    await publish_paid_orders(store, publisher, customers * 3, again=slice(-4, None))

    client = aioredis.Redis.from_url(redis_url)
    try:
        first = await example_consumer.build(store.pool, client, prefix=publisher._prefix, name="first")
        handle = first._handle
        seen = 0

        async def dies_after_the_third(envelope: dict[str, Any]) -> None:
            nonlocal seen
            await handle(envelope)
            seen += 1
            if seen == 3:
                raise Crash  # effects committed, never acknowledged

        first._handle = dies_after_the_third
        with pytest.raises(Crash):
            await first.run_once()
        # Another consumer takes over what the dead one left pending, then reads the rest.
        second = await example_consumer.build(
            store.pool, client, prefix=publisher._prefix, name="second", reclaim_idle_ms=0
        )
        second._block_ms = 10
        while await second.run_once():
            pass
        pending = await client.xpending(f"{publisher._prefix}order", example_consumer.CONSUMER)
        assert pending["pending"] == 0
    finally:
        await client.aclose()
    async with store.pool.acquire() as conn:
        stats = {r["customer_id"]: (r["created"], r["paid"]) for r in await conn.fetch("SELECT * FROM order_stats")}
    assert stats == {"alice": (3, 3), "bob": (3, 3)}, "every event counted exactly once"
