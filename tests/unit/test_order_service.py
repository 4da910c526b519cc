"""OrderService rules that a live server can't show deterministically, with a fake store."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from orderfast import _core
from orderfast.domain.catalog import CatalogChanges, ProductSpec
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
    service = OrderService(store, catalog, _core.IdempotencyMap(), catalog_service.catch_up)
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


def counting(store: FakeStore, gate: asyncio.Event | None = None) -> list[int]:
    """Counts the store's catalog reads (each refresh is one); with ``gate``, each read's answer
    waits for it (the rows as they were when the read began)."""
    calls: list[int] = []
    read = store.catalog_since

    async def catalog_since(version: int) -> CatalogChanges:
        calls.append(version)
        changes = await read(version)
        if gate is not None:
            await gate.wait()
        return changes

    store.catalog_since = catalog_since  # type: ignore[method-assign]
    return calls


async def test_a_body_refused_before_pricing_never_reads_the_catalog() -> None:
    # No newer snapshot can make an unknown field or a zero quantity valid: a refresh would only
    # hand every malformed request a database round trip.
    service, _, store = await make()
    calls = counting(store)
    for body in (
        {"currency": "USD", "items": [{"sku": "A", "quantity": 1}], "bogus": 1},
        {"currency": "USD", "items": [{"sku": "A", "quantity": 0}]},
    ):
        with pytest.raises(_core.ValidationError):
            await service.quote(orjson.dumps(body))
        with pytest.raises(_core.ValidationError):
            await service.create("c", "k-bad", orjson.dumps(body))
    assert calls == []


async def test_refusals_at_once_share_one_catalog_refresh() -> None:
    service, _, store = await make()
    gate = asyncio.Event()
    calls = counting(store, gate)
    unknown = orjson.dumps({"currency": "USD", "items": [{"sku": "NOPE", "quantity": 1}]})
    tasks = [asyncio.create_task(service.quote(unknown)) for _ in range(50)]
    await asyncio.sleep(0)  # one turn of the loop: every task runs to its refusal and waits
    assert len(calls) == 1
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, _core.ValidationError) for r in results)
    # The first refusal's refresh, and one more for all those refused while it was under way
    # (it may have started before their refusal, so it cannot answer for them).
    assert len(calls) == 2


async def test_a_refusal_waits_for_a_refresh_that_starts_after_it() -> None:
    # A product written elsewhere while a refresh is under way: the refresh may have read the
    # catalog before the write, so a request refused meanwhile must see the next one.
    service, _, store = await make()
    gate = asyncio.Event()
    counting(store, gate)
    unknown = orjson.dumps({"currency": "USD", "items": [{"sku": "LATE", "quantity": 1}]})
    first = asyncio.create_task(service.quote(unknown))
    await asyncio.sleep(0)  # refused, its refresh has read the catalog and waits
    await store.put_product(ProductSpec("LATE", "Late", "USD", 100, 5))
    second = asyncio.create_task(service.quote(unknown))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(_core.ValidationError):
        await first
    assert orjson.loads(await second)["total"] == "1.00"
