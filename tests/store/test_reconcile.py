"""Reconciliation finds deliberately broken rows, on every store."""

from __future__ import annotations

import sqlite3

import pytest

from orderfast.domain import lifecycle
from orderfast.domain.orders import CancelReason
from orderfast.store.base import Change, Store
from orderfast.store.postgres import PostgresStore
from orderfast.store.sqlite import SqliteStore
from tests.conftest import planned
from tests.store.test_contract import new_order, put

pytestmark = pytest.mark.anyio


async def sql(store: Store, statement: str) -> None:
    if isinstance(store, PostgresStore):
        async with store.pool.acquire() as conn:
            await conn.execute(statement)
    else:
        assert isinstance(store, SqliteStore)
        con = sqlite3.connect(store.path)
        con.execute(statement)
        con.commit()
        con.close()


async def test_a_consistent_store_reconciles(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    a, b = new_order(), new_order()
    await store.create_orders([a, b])
    await store.change_order(a.order.id, planned(lambda o: Change(transition=lifecycle.cancel(o, CancelReason.ADMIN))))
    await store.change_order(b.order.id, planned(lambda o: Change(transition=lifecycle.pay(o, o.total, o.currency))))
    assert await store.reconcile() == []


async def test_broken_rows_are_found(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    await put(store, "SKU-B", stock=10)
    a, b = new_order(), new_order(lines=(("SKU-B", 1, 100),))
    await store.create_orders([a, b])
    await store.change_order(a.order.id, planned(lambda o: Change(transition=lifecycle.cancel(o, CancelReason.ADMIN))))
    await sql(store, f"DELETE FROM outbox WHERE aggregate_id = '{a.order.id}' AND sequence = 2")
    await sql(store, "UPDATE products SET reserved = reserved + 5 WHERE sku = 'SKU-B'")
    await sql(
        store,
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at) "
        "VALUES ('11111111-1111-7111-8111-111111111111', 'order', '22222222-2222-7222-8222-222222222222', 1, "
        "'order.created', '{}', " + ("now()" if isinstance(store, PostgresStore) else "0") + ")",
    )
    found = {(d.kind, d.subject) for d in await store.reconcile()}
    assert found == {
        ("missing_events", a.order.id),
        ("orphan_event", "11111111-1111-7111-8111-111111111111"),
        ("reserved_stock", "SKU-B"),
    }


async def test_published_references_page_newest_first_and_are_counted(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    await store.create_orders([new_order() for _ in range(5)])
    claimed = await store.claim_outbox(10, 60)
    await store.mark_published([(m.position, f"{i}-0") for i, m in enumerate(claimed, 1)])
    assert await store.published_count() == 5
    first = await store.published_refs(2)
    second = await store.published_refs(2, before=first[-1][0])
    rest = await store.published_refs(2, before=second[-1][0])
    assert first + second + rest == [(m.position, f"{i}-0") for i, m in reversed(list(enumerate(claimed, 1)))]
    await store.unpublish([claimed[0].position])  # the broker lost it
    assert await store.published_count() == 4
    assert claimed[0].position not in [p for p, _ in await store.published_refs(10)]
