"""OrderService rules that a live server can't show deterministically, with a fake store."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from orderfast import _core
from orderfast.domain.catalog import ProductSpec
from orderfast.services.catalog import CatalogService
from orderfast.services.errors import OutOfStockError
from orderfast.services.orders import OrderService
from tests.unit.fakes import FakeStore

pytestmark = pytest.mark.anyio

BODY = orjson.dumps({"currency": "USD", "items": [{"sku": "A", "quantity": 2}], "expected_total": "20.00"})


async def make(store: FakeStore | None = None) -> tuple[OrderService, CatalogService, FakeStore]:
    store = store or FakeStore()
    catalog = _core.Catalog()
    catalog_service = CatalogService(store, catalog)
    if "A" not in store.products:
        await catalog_service.put(ProductSpec("A", "Alpha", "USD", 1000, 10))
    await catalog_service.refresh()
    service = OrderService(store, catalog, _core.IdempotencyMap(), catalog_service.refresh)
    return service, catalog_service, store


async def test_second_request_while_first_in_flight_is_refused() -> None:
    service, _, store = await make()
    store.gate = asyncio.Event()
    first = asyncio.create_task(service.create("c", "k", BODY))
    await store.entered.wait()
    with pytest.raises(_core.KeyInFlightError):
        await service.create("c", "k", BODY)
    store.gate.set()
    result = await first
    assert (result.status, result.replayed) == (201, False)
    again = await service.create("c", "k", BODY)
    assert again.replayed and again.body == result.body


async def test_replay_survives_a_restart_and_a_price_change() -> None:
    service, catalog_service, store = await make()
    first = await service.create("c", "k", BODY)
    await catalog_service.put(ProductSpec("A", "Alpha", "USD", 1500, 10))
    restarted, _, _ = await make(store)  # a fresh process: empty map, new prices
    again = await restarted.create("c", "k", BODY)
    assert again.replayed and again.body == first.body
    with pytest.raises(_core.PriceChangedError):
        await restarted.create("c", "other-key", BODY)


async def test_a_failed_attempt_releases_the_key() -> None:
    service, catalog_service, _ = await make()
    big = orjson.dumps({"currency": "USD", "items": [{"sku": "A", "quantity": 11}]})
    with pytest.raises(OutOfStockError):
        await service.create("c", "k", big)
    await catalog_service.put(ProductSpec("A", "Alpha", "USD", 1000, 20))
    assert (await service.create("c", "k", big)).status == 201


async def test_reused_key_with_other_body_after_restart_is_a_mismatch() -> None:
    service, _, store = await make()
    await service.create("c", "k", BODY)
    restarted, _, _ = await make(store)
    other = orjson.dumps({"currency": "USD", "items": [{"sku": "A", "quantity": 1}]})
    with pytest.raises(_core.KeyMismatchError):
        await restarted.create("c", "k", other)


async def test_a_product_added_elsewhere_is_found_on_first_use() -> None:
    service, _, store = await make()
    await store.put_product(ProductSpec("NEW", "Fresh", "USD", 100, 5))  # another process's write
    body = orjson.dumps({"currency": "USD", "items": [{"sku": "NEW", "quantity": 1}]})
    assert (await service.create("c", "k2", body)).status == 201
