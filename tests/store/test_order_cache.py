"""The shared order cache against a real Redis and a real store: entries only move forward, many
readers missing one order at once load it once, a change is written through, and an unreachable
Redis costs reads nothing but the cache."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from orderfast import _core
from orderfast.domain.catalog import ProductSpec
from orderfast.resilience.breaker import Breaker
from orderfast.services.catalog import CatalogService
from orderfast.services.lifecycle import LifecycleService
from orderfast.services.order_cache import OrderCache, OrderDocument
from orderfast.services.orders import OrderService
from orderfast.store.base import Store
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.anyio
TTL = 20.0


class CountingStore:
    """The real store, counting the order loads that reach it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.loads = 0

    async def get_order(self, order_id: str) -> Any:
        self.loads += 1
        await asyncio.sleep(0)  # let the other readers arrive while this load is out
        return await self._store.get_order(order_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def forget(redis_url: str, key: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.delete(key)
    await client.aclose()


async def cache_for(redis_url: str, prefix: str, **kw: Any) -> OrderCache:
    return OrderCache(aioredis.Redis.from_url(redis_url), ttl=TTL, prefix=prefix, **kw)


async def an_order(store: Store, cache: OrderCache | None) -> tuple[OrderService, str]:
    core = _core.Catalog()
    catalog = CatalogService(store, core)
    sku = f"C-{uuid.uuid4().hex[:8]}"
    await catalog.put(ProductSpec(sku, "Cached", "USD", 500, 100))
    await catalog.refresh()
    service = OrderService(store, core, _core.IdempotencyMap(), catalog.catch_up, cache)
    body = orjson.dumps({"currency": "USD", "items": [{"sku": sku, "quantity": 1}]})
    created = await service.create(f"owner-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex, body)
    return service, orjson.loads(created.body)["id"]


async def test_an_entry_never_goes_back_to_an_older_sequence(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    cache = await cache_for(redis_url, prefix)
    try:
        newer, older = OrderDocument("u-1", 3, b'{"v":3}'), OrderDocument("u-1", 2, b'{"v":2}')
        assert await cache.put("o-1", newer)
        assert not await cache.put("o-1", older), "a load that raced a change cannot put it back"
        assert not await cache.put("o-1", newer), "nor the same one again"
        assert await cache.get("o-1") == newer
        assert await cache.put("o-1", OrderDocument("u-1", 4, b'{"v":4}'))
        assert (await cache.get("o-1") or newer).sequence == 4
        # Each entry lives the TTL, give or take 10 %.
        client = aioredis.Redis.from_url(redis_url)
        lives = await client.pttl(f"{prefix}o-1")
        await client.delete(f"{prefix}o-1")
        await client.aclose()
        assert 0.9 * TTL * 1000 - 1000 <= lives <= 1.1 * TTL * 1000
    finally:
        await cache.close()


async def test_an_owner_with_any_bytes_round_trips() -> None:
    for owner in ("u-1", "", "sp ace", "new\nline", "ünï"):
        doc = OrderDocument(owner, 12, b'{"id":"x"}\n')
        assert OrderDocument.decode(doc.encode()) == doc
    assert OrderDocument.decode(b"garbage") is None
    assert OrderDocument.decode(b"1 99\nshort") is None


async def test_readers_missing_one_order_at_once_load_it_once(store: Store, redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    cache = await cache_for(redis_url, prefix)
    counting = CountingStore(store)
    try:
        service, order_id = await an_order(store, None)
        cached = OrderService(counting, _core.Catalog(), _core.IdempotencyMap(), service._refresh_catalog, cache)
        documents = await asyncio.gather(*(cached.document(order_id) for _ in range(20)))
        assert counting.loads == 1
        assert all(d is not None and d == documents[0] for d in documents)
        first = documents[0]
        assert first is not None and first.sequence == 1
        # Now it is cached: no more loads, the same bytes.
        assert await cached.document(order_id) == first and counting.loads == 1
        assert await cached.document(str(uuid.uuid4())) is None, "no such order: nothing cached, None"
    finally:
        await forget(redis_url, f"{prefix}{order_id}")
        await cache.close()


async def test_a_change_is_written_through_at_once(store: Store, redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    cache = await cache_for(redis_url, prefix)
    try:
        service, order_id = await an_order(store, cache)
        before = await service.document(order_id)
        assert before is not None and (await service.document(order_id)) == before  # cached
        lifecycle = LifecycleService(store, cache=cache)
        canceled = await lifecycle.cancel(order_id, before.customer_id, is_admin=False)
        after = await cache.get(order_id)
        assert after is not None and after.sequence == canceled.sequence == 2
        assert orjson.loads(after.body)["status"] == "CANCELED"
        assert await service.document(order_id) == after
    finally:
        await forget(redis_url, f"{prefix}{order_id}")
        await cache.close()


async def test_an_unreachable_redis_costs_reads_only_the_cache(store: Store) -> None:
    dead = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.25, socket_connect_timeout=0.25
    )
    breaker = Breaker("redis-cache-test", failures=2, cooldown=60)
    cache = OrderCache(dead, ttl=TTL, breaker=breaker)
    try:
        service, order_id = await an_order(store, cache)
        for _ in range(5):
            document = await service.document(order_id)
            assert document is not None and document.sequence == 1
        assert breaker.state == 2, "open: later reads do not even try"
    finally:
        await cache.close()
