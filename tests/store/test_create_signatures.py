"""Expand, then contract: a release before migration 0009 calls the create-order function with
fewer arguments (0006's 34, 0008's 35). During a rollout it still runs on the new schema, so those
signatures stay and create orders as they did."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from orderfast.domain.catalog import ProductSpec
from orderfast.store.postgres import orders
from orderfast.store.postgres.store import PostgresStore
from tests.store.test_contract import new_order

pytestmark = pytest.mark.anyio


class Recording:
    """Stands in for a connection: keeps the arguments of the create-order call, runs nothing."""

    args: tuple[Any, ...] = ()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[int, str, None]]:
        self.args = args
        return [(1, "created", None)]


@pytest.mark.parametrize("arity", [34, 35])
async def test_an_earlier_releases_call_still_creates_orders(
    pg_store: PostgresStore, contract_pg_dsn: str, arity: int
) -> None:
    await pg_store.put_product(ProductSpec("SKU-A", "A", "USD", 100, 10))
    plan = new_order(customer="before", lines=(("SKU-A", 2, 100),))
    recording = Recording()
    await orders.create_batch(recording, [plan])  # type: ignore[arg-type]
    assert len(recording.args) == 36, "this release's call"
    conn = await asyncpg.connect(contract_pg_dsn)
    try:
        placeholders = ", ".join(f"${n}" for n in range(1, arity + 1))
        rows = await conn.fetch(
            f"SELECT i, outcome, detail FROM orderfast_create_orders({placeholders})", *recording.args[:arity]
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [(1, "created", None)]
    got = await pg_store.get_order(plan.order.id)
    assert got is not None and got.customer_id == "before" and got.total == 200
    product = await pg_store.get_product("SKU-A")
    assert product is not None and product.stock == 8
