"""The catalog listings on every store: keyset pages by primary key, never skipping or repeating a
row, each row read as its single get reads it.

Keys share a prefix and differ in zero-padded digits only, so their order is the same in every
collation a PostgreSQL database may have (and byte order in SQLite): the tests hold on any locale.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from orderfast.domain.catalog import CouponSpec, ProductSpec, PromotionSpec
from orderfast.store.base import Created, NewOrder, Store
from tests.store.test_contract import new_order

pytestmark = pytest.mark.anyio

COUNT = 7
Lister = Callable[[str | None, int], Awaitable[list[Any]]]


async def walk(list_page: Lister, key: Callable[[Any], str], limit: int) -> list[list[Any]]:
    """Every page, each asked for after the last key of the page before, until one comes back short
    (bounded: a cursor that does not move on fails the test instead of looping)."""
    pages: list[list[Any]] = []
    after: str | None = None
    for _ in range(COUNT + 2):
        page = await list_page(after, limit)
        assert len(page) <= limit
        pages.append(page)
        if len(page) < limit:
            return pages
        after = key(page[-1])
    raise AssertionError(f"more than {COUNT + 1} pages of {limit} for {COUNT} rows")


async def fill(store: Store, kind: str) -> tuple[Lister, Callable[[Any], str], list[str]]:
    """COUNT rows of one kind, written out of key order; the store's lister, its key, the keys sorted."""
    keys = [f"K-{i:03d}" for i in range(COUNT)]
    for k in random.Random(kind).sample(keys, len(keys)):
        await put_one(store, kind, k)
    lister: dict[str, tuple[Lister, Callable[[Any], str]]] = {
        "products": (store.list_products, lambda p: p.sku),
        "coupons": (store.list_coupons, lambda c: c.spec.code),
        "promotions": (store.list_promotions, lambda p: p.spec.id),
    }
    return *lister[kind], keys


KINDS = ["products", "coupons", "promotions"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", [1, 3, COUNT, COUNT + 1, 100])
async def test_pages_cover_every_row_once_in_key_order(store: Store, kind: str, limit: int) -> None:
    list_page, key, keys = await fill(store, kind)
    pages = await walk(list_page, key, limit)
    assert [key(row) for page in pages for row in page] == keys
    # Every page but the last is full; the last is short — empty when the rows fill whole pages.
    assert [len(p) for p in pages] == [limit] * (COUNT // limit) + [COUNT % limit]
    assert await list_page(keys[-1], limit) == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_page_starts_just_above_the_key_given_whether_or_not_it_exists(store: Store, kind: str) -> None:
    list_page, key, keys = await fill(store, kind)
    assert [key(r) for r in await list_page("K-002", 2)] == ["K-003", "K-004"]
    assert [key(r) for r in await list_page("K-0025", 100)] == keys[3:]
    assert [key(r) for r in await list_page("", 2)] == keys[:2]
    assert await list_page("L", 5) == []


@pytest.mark.parametrize("kind", KINDS)
async def test_rows_are_read_as_their_single_get_reads_them(store: Store, kind: str) -> None:
    list_page, _, keys = await fill(store, kind)
    get = {"products": store.get_product, "coupons": store.get_coupon, "promotions": store.get_promotion}[kind]
    assert await list_page(None, 100) == [await get(k) for k in keys]


async def test_products_list_with_their_current_stock_and_coupons_with_their_redemptions(store: Store) -> None:
    for sku in ("SKU-A", "SKU-B"):
        await store.put_product(ProductSpec(sku, sku, "USD", 500, 10))
    await store.put_coupon(CouponSpec("SAVE", "USD", percent_off="10", max_redemptions=5))
    base = new_order(lines=(("SKU-B", 3, 500),))
    order = NewOrder(order=replace(base.order, coupon="SAVE"), event=base.event, idempotency=base.idempotency)
    assert isinstance((await store.create_orders([order]))[0], Created)
    assert [(p.sku, p.stock) for p in await store.list_products(None, 10)] == [("SKU-A", 10), ("SKU-B", 7)]
    assert [(c.spec.code, c.redemptions) for c in await store.list_coupons(None, 10)] == [("SAVE", 1)]


@pytest.mark.parametrize("kind", KINDS)
async def test_writes_between_pages_never_make_a_row_repeat_or_go_missing(store: Store, kind: str) -> None:
    list_page, key, keys = await fill(store, kind)
    first = await list_page(None, 3)
    assert [key(r) for r in first] == keys[:3]
    # Between two pages: a row already seen is rewritten (a new catalog version: a listing by
    # version would show it again), one row lands before the cursor and one after it.
    for k in ("K-001", "K-0015", "K-0045"):
        await put_one(store, kind, k)
    rest = await list_page(key(first[-1]), 100)
    assert [key(r) for r in rest] == ["K-003", "K-004", "K-0045", "K-005", "K-006"]


async def put_one(store: Store, kind: str, k: str) -> None:
    if kind == "products":
        await store.put_product(ProductSpec(k, f"name {k}", "USD", 200, 1))
    elif kind == "coupons":
        await store.put_coupon(CouponSpec(k, "USD", amount_off=100))
    else:
        await store.put_promotion(PromotionSpec(k, ("SKU-B",), "7"))
