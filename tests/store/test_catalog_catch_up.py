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
    service = OrderService(pg_store, stale_catalog, _core.IdempotencyMap(), stale.catch_up)
    body = orjson.dumps({"currency": "USD", "items": [{"sku": "SKU-L", "quantity": 1}]})
    result = await service.create("lifted", "k-lifted", body)
    assert result.status == 201
