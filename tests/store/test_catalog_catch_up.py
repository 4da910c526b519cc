"""Two workers on one database: a SKU and a coupon written through one are ordered at once through the
other, whose snapshot has not yet refreshed — by a burst, each request refused by the snapshot first."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from orderfast import _core
from orderfast.domain.catalog import CouponSpec, ProductSpec
from orderfast.domain.customers import RestrictionsSpec
from orderfast.services.catalog import CatalogService
from orderfast.services.errors import InvalidInputError
from orderfast.services.orders import OrderService
from orderfast.store.postgres import PostgresStore

pytestmark = pytest.mark.anyio


async def test_a_burst_on_a_stale_worker_catches_up_once_and_prices_every_order(pg_store: PostgresStore) -> None:
    writer = CatalogService(pg_store, _core.Catalog())
    stale_catalog = _core.Catalog()
    stale = CatalogService(pg_store, stale_catalog)
    await stale.refresh()
    await writer.put(ProductSpec("FRESH", "Fresh", "USD", 1000, 100))
    await writer.put_coupon(CouponSpec("NEW", "USD", amount_off=50))
    service = OrderService(pg_store, stale_catalog, _core.IdempotencyMap(), stale.catch_up)
    body = orjson.dumps({"currency": "USD", "items": [{"sku": "FRESH", "quantity": 1}], "coupon": "NEW"})
    results = await asyncio.gather(*(service.create("c", f"k-{i}", body) for i in range(10)), return_exceptions=True)
    assert [getattr(r, "status", r) for r in results] == [201] * 10


async def test_a_customer_lifted_through_another_worker_is_served_by_a_stale_one(pg_store: PostgresStore) -> None:
    """The stale worker refuses from its snapshot (still blocked), catches up, and must then price the
    order: the restriction row it loaded counts as something new, like a product or a coupon."""
    writer = CatalogService(pg_store, _core.Catalog())
    await writer.put(ProductSpec("SKU-L", "Lifted", "USD", 1000, 100))
    await writer.put_restrictions(RestrictionsSpec("lifted", blocked=True))
    stale_catalog = _core.Catalog()
    stale = CatalogService(pg_store, stale_catalog)
    await stale.refresh()
    await writer.put_restrictions(RestrictionsSpec("lifted"))
    service = OrderService(
        pg_store, stale_catalog, _core.IdempotencyMap(), stale.catch_up, catalog_version=lambda: stale.version
    )
    body = orjson.dumps({"currency": "USD", "items": [{"sku": "SKU-L", "quantity": 1}]})
    result = await service.create("lifted", "k-lifted", body)
    assert result.status == 201


async def stale_worker(store: PostgresStore) -> tuple[CatalogService, OrderService]:
    """A catalog writer, and an order service on a snapshot loaded before the writes that follow."""
    writer = CatalogService(store, _core.Catalog())
    await writer.put(ProductSpec("SKU-R", "Restricted", "USD", 1000, 100))
    stale_catalog = _core.Catalog()
    stale = CatalogService(store, stale_catalog)
    await stale.refresh()
    orders = OrderService(
        store, stale_catalog, _core.IdempotencyMap(), stale.catch_up, catalog_version=lambda: stale.version
    )
    return writer, orders


ONE = orjson.dumps({"currency": "USD", "items": [{"sku": "SKU-R", "quantity": 1}]})


async def test_a_customer_blocked_through_another_worker_is_refused_by_a_stale_one_at_once(
    pg_store: PostgresStore,
) -> None:
    """The stale snapshot prices the order as if unrestricted; the transaction finds the customer's
    restrictions newer than that snapshot, writes nothing, and the order is priced again after a
    catch-up: refused, with no stock taken and no order left behind."""
    writer, orders = await stale_worker(pg_store)
    await writer.put_restrictions(RestrictionsSpec("fraud", blocked=True))
    with pytest.raises(_core.CustomerBlockedError):
        await orders.create("fraud", "k-1", ONE)
    product = await pg_store.get_product("SKU-R")
    assert product is not None and product.stock == 100
    assert await pg_store.find_idempotency("fraud", "k-1") is None
    assert (await orders.create("someone-else", "k-2", ONE)).status == 201


async def test_a_cap_set_through_another_worker_binds_a_stale_one_at_once(pg_store: PostgresStore) -> None:
    writer, orders = await stale_worker(pg_store)
    assert (await orders.create("capped", "k-1", ONE)).status == 201
    await writer.put_restrictions(RestrictionsSpec("capped", max_open_orders=1))
    with pytest.raises(InvalidInputError) as refused:
        await orders.create("capped", "k-2", ONE)
    assert [code for _, code, _ in refused.value.errors] == ["open_orders_limit"]


async def test_the_writing_worker_is_not_stale_for_its_own_write(pg_store: PostgresStore) -> None:
    """A catalog write catches the writer's snapshot version up at once: its next order is not refused
    as stale and priced a second time (one transaction, not two — the first orders after a change
    paid for two over a slow network)."""
    catalog = _core.Catalog()
    writer = CatalogService(pg_store, catalog)
    await writer.refresh()
    product, _ = await writer.put(ProductSpec("SKU-W", "Written", "USD", 1000, 100))
    assert writer.version >= product.version
    restrictions, _ = await writer.put_restrictions(RestrictionsSpec("w-customer", max_open_orders=5))
    assert writer.version >= restrictions.version
    calls = 0
    create_orders = pg_store.create_orders

    async def counted(batch):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await create_orders(batch)

    pg_store.create_orders = counted  # type: ignore[method-assign]
    orders = OrderService(
        pg_store, catalog, _core.IdempotencyMap(), writer.catch_up, catalog_version=lambda: writer.version
    )
    body = orjson.dumps({"currency": "USD", "items": [{"sku": "SKU-W", "quantity": 1}]})
    assert (await orders.create("w-customer", "k-w", body)).status == 201
    assert calls == 1
