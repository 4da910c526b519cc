"""The idempotency map is a bounded window in front of the database: a retry of a key it has let go
is answered from the database record, the same bytes, with nothing created twice."""

from __future__ import annotations

import orjson
import pytest

from orderfast import _core
from orderfast.domain.catalog import ProductSpec
from orderfast.services.catalog import CatalogService
from orderfast.services.orders import OrderService
from orderfast.store.postgres import PostgresStore

pytestmark = pytest.mark.anyio

BODY = orjson.dumps({"currency": "USD", "items": [{"sku": "A", "quantity": 1}]})


async def test_a_key_the_map_has_let_go_is_replayed_from_the_database(pg_store: PostgresStore) -> None:
    catalog = _core.Catalog()
    catalog_service = CatalogService(pg_store, catalog)
    await catalog_service.put(ProductSpec("A", "Alpha", "USD", 1000, 10_000))
    await catalog_service.refresh()
    window = _core.IdempotencyMap(max_bytes=1 << 16)  # the smallest the settings allow
    service = OrderService(pg_store, catalog, window, catalog_service.refresh)
    first = await service.create("c", "k-0", BODY)
    for n in range(1, 400):
        await service.create("c", f"k-{n}", BODY)
    assert window.nbytes <= 1 << 16 and len(window) < 400, "the map kept to its budget"

    batches = pg_store.group.batches
    again = await service.create("c", "k-0", BODY)
    assert pg_store.group.batches == batches + 1, "answered through the database, not the map"
    assert (again.status, again.replayed, again.body, again.location) == (201, True, first.body, first.location)
    async with pg_store._connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orders") == 400, "nothing created twice"
    replayed = await service.create("c", "k-0", BODY)
    assert replayed.replayed and replayed.body == first.body
    assert pg_store.group.batches == batches + 1, "and the map holds it again"
