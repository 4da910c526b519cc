"""The Store contract: every backend passes the same suite, PostgreSQL for real."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orderfast import _core
from orderfast.domain.catalog import CouponSpec, PriceRow, ProductSpec, PromotionSpec
from orderfast.domain.customers import RestrictionsSpec
from orderfast.domain.events import order_created
from orderfast.domain.orders import Order, OrderLine, OrderStatus, utc_now_ms
from orderfast.store.base import (
    CatalogStale,
    ConstraintViolation,
    CouponExhausted,
    Created,
    Duplicate,
    IdempotencyRecord,
    NewOrder,
    OpenOrdersExceeded,
    OutOfStock,
    SchemaOutOfDate,
    Store,
)
from orderfast.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


def new_order(
    customer: str = "c-1",
    key: str | None = None,
    lines: tuple[tuple[str, int, int], ...] = (("SKU-A", 2, 500),),
    fingerprint: bytes = b"f" * 32,
    created_at_offset_ms: int = 0,
) -> NewOrder:
    order_lines = tuple(OrderLine(s, f"name {s}", q, p, 0, 0, q * p) for s, q, p in lines)
    total = sum(ln.total for ln in order_lines)
    order = Order(
        id=_core.new_order_id(),
        customer_id=customer,
        status=OrderStatus.PENDING_PAYMENT,
        currency="USD",
        lines=order_lines,
        subtotal=total,
        discount=0,
        tax=0,
        total=total,
        coupon=None,
        tax_inclusive=False,
        created_at=utc_now_ms() + timedelta(milliseconds=created_at_offset_ms),
    )
    body = f'{{"id": "{order.id}"}}'.encode()
    return NewOrder(
        order=order,
        event=order_created(_core.new_order_id(), order),
        idempotency=IdempotencyRecord(customer, key or order.id, fingerprint, 201, body, order.id),
    )


async def stock(store: Store, sku: str) -> int:
    product = await store.get_product(sku)
    assert product is not None
    return product.stock


async def put(store: Store, sku: str, stock: int = 10, price: int = 500) -> None:
    await store.put_product(ProductSpec(sku, f"name {sku}", "USD", price, stock))


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


async def test_put_get_and_versions(store: Store) -> None:
    product, created = await store.put_product(ProductSpec("SKU-A", "Alpha", "USD", 1999, 5))
    assert created is True
    assert (product.sku, product.name, product.currency, product.price, product.stock) == (
        "SKU-A",
        "Alpha",
        "USD",
        1999,
        5,
    )
    again, created = await store.put_product(ProductSpec("SKU-A", "Alpha 2", "USD", 2999, 7))
    assert created is False
    assert again.version > product.version
    fetched = await store.get_product("SKU-A")
    assert fetched == again
    assert await store.get_product("nope") is None


async def test_catalog_since_returns_changes_in_version_order(store: Store) -> None:
    await put(store, "A")
    await put(store, "B")
    all_products = (await store.catalog_since(0)).products
    assert [p.sku for p in all_products] == ["A", "B"]
    await put(store, "A", stock=1, price=750)
    changed = await store.catalog_since(all_products[-1].version)
    a = await store.get_product("A")
    assert a is not None
    # What the snapshot loads: every field pricing needs, in the row's order, without the timestamp.
    assert changed.products == [PriceRow("A", "name A", "USD", 750, 1, a.version, None, None)]
    assert changed.coupons == [] and changed.promotions == []


async def test_create_reserves_stock_and_writes_everything(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    await put(store, "SKU-B", stock=3)
    new = new_order(lines=(("SKU-A", 2, 500), ("SKU-B", 3, 100)))
    assert await store.create_orders([new]) == [Created(new.order.id)]
    assert await stock(store, "SKU-A") == 8
    assert await stock(store, "SKU-B") == 0
    assert await store.get_order(new.order.id) == new.order
    record = await store.find_idempotency("c-1", new.idempotency.key)
    assert record == new.idempotency


async def test_out_of_stock_writes_nothing(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    await put(store, "SKU-B", stock=1)
    new = new_order(lines=(("SKU-A", 2, 500), ("SKU-B", 2, 100)))
    assert await store.create_orders([new]) == [OutOfStock("SKU-B")]
    assert await stock(store, "SKU-A") == 10, "the reservation of SKU-A was rolled back"
    assert await store.get_order(new.order.id) is None
    assert await store.find_idempotency("c-1", new.idempotency.key) is None


async def test_unknown_product_is_out_of_stock(store: Store) -> None:
    new = new_order(lines=(("GHOST", 1, 1),))
    assert await store.create_orders([new]) == [OutOfStock("GHOST")]


async def test_duplicate_key_returns_the_first_record(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    first = new_order(key="k-1")
    second = new_order(key="k-1", fingerprint=b"g" * 32)
    assert await store.create_orders([first]) == [Created(first.order.id)]
    assert await store.create_orders([second]) == [Duplicate(first.idempotency)]
    assert await stock(store, "SKU-A") == 8, "the duplicate reserved nothing"
    assert await store.get_order(second.order.id) is None
    other_customer = new_order(customer="c-2", key="k-1")
    assert await store.create_orders([other_customer]) == [Created(other_customer.order.id)]


async def test_batch_outcomes_are_independent(store: Store) -> None:
    await put(store, "SKU-A", stock=3)
    ok1, too_big, ok2 = (
        new_order(),
        new_order(lines=(("SKU-A", 5, 500),)),
        new_order(lines=(("SKU-A", 1, 500),)),
    )
    outcomes = await store.create_orders([ok1, too_big, ok2])
    assert outcomes == [Created(ok1.order.id), OutOfStock("SKU-A"), Created(ok2.order.id)]
    assert await stock(store, "SKU-A") == 0


async def test_concurrent_creates_never_oversell(store: Store) -> None:
    await put(store, "HOT", stock=5)
    batch = [new_order(customer=f"c-{i}", lines=(("HOT", 1, 100),)) for i in range(12)]
    outcomes = await asyncio.gather(*(store.create_orders([n]) for n in batch))
    created = [o for (o,) in outcomes if isinstance(o, Created)]
    assert len(created) == 5
    assert await stock(store, "HOT") == 0


async def test_concurrent_same_key_creates_one_order(store: Store) -> None:
    await put(store, "SKU-A", stock=100)
    twins = [new_order(key="same") for _ in range(6)]
    outcomes = await asyncio.gather(*(store.create_orders([n]) for n in twins))
    created = [o for (o,) in outcomes if isinstance(o, Created)]
    duplicates = [o for (o,) in outcomes if isinstance(o, Duplicate)]
    assert len(created) == 1 and len(duplicates) == 5
    assert {d.existing.order_id for d in duplicates} == {created[0].order_id}
    assert await stock(store, "SKU-A") == 98


async def test_list_orders_newest_first_with_keyset_paging(store: Store) -> None:
    await put(store, "SKU-A", stock=100)
    made = [new_order(customer="pager") for _ in range(5)]
    for n in made:
        await store.create_orders([n])
    await store.create_orders([new_order(customer="someone-else")])
    ids = [n.order.id for n in made][::-1]
    page1 = await store.list_orders("pager", 2, None)
    assert [o.id for o in page1] == ids[:2]
    page2 = await store.list_orders("pager", 2, page1[-1].id)
    assert [o.id for o in page2] == ids[2:4]
    page3 = await store.list_orders("pager", 2, page2[-1].id)
    assert [o.id for o in page3] == ids[4:]
    assert page1[0] == made[-1].order, "lines and amounts come back intact"


async def test_unknown_order_is_none(store: Store) -> None:
    assert await store.get_order(_core.new_order_id()) is None
    assert await store.find_idempotency("nobody", "nothing") is None


async def test_sqlite_refuses_to_open_an_unmigrated_file(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    fresh = SqliteStore(tmp_path / "fresh.db")
    with pytest.raises(SchemaOutOfDate):
        await fresh.open()
    await fresh.close()


def coupon_order(code: str, customer: str = "c-1") -> NewOrder:
    base = new_order(customer=customer)
    return NewOrder(order=replace(base.order, coupon=code), event=base.event, idempotency=base.idempotency)


async def test_coupons_round_trip_and_keep_their_redemptions(store: Store) -> None:
    expires = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    spec = CouponSpec("SAVE10", "USD", percent_off="10", skus=("SKU-A", "SKU-B"), expires_at=expires, max_redemptions=5)
    coupon, created = await store.put_coupon(spec)
    assert created and coupon.spec == spec and coupon.redemptions == 0
    assert await store.get_coupon("SAVE10") == coupon
    await put(store, "SKU-A", stock=10)
    assert await store.create_orders([coupon_order("SAVE10")]) != []
    again, created = await store.put_coupon(replace(spec, percent_off="15"))
    assert not created and again.redemptions == 1 and again.spec.percent_off == "15"
    assert again.version > coupon.version
    assert await store.get_coupon("NOPE") is None


async def test_amount_coupon_round_trip(store: Store) -> None:
    spec = CouponSpec("FIVE", "EUR", amount_off=500, min_subtotal=2000)
    coupon, _ = await store.put_coupon(spec)
    assert coupon.spec == spec


async def test_coupon_limit_holds_under_concurrency(store: Store) -> None:
    await put(store, "SKU-A", stock=100)
    await store.put_coupon(CouponSpec("TWICE", "USD", amount_off=100, max_redemptions=2))
    outcomes = await asyncio.gather(*(store.create_orders([coupon_order("TWICE", f"c-{i}")]) for i in range(6)))
    flat = [o for (o,) in outcomes]
    assert sum(isinstance(o, Created) for o in flat) == 2
    assert flat.count(CouponExhausted("TWICE")) == 4
    assert await stock(store, "SKU-A") == 96, "refused orders reserved nothing"
    coupon = await store.get_coupon("TWICE")
    assert coupon is not None and coupon.redemptions == 2


async def test_lowering_a_limit_below_redemptions_is_refused(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    await store.put_coupon(CouponSpec("ONCE", "USD", amount_off=1, max_redemptions=3))
    await store.create_orders([coupon_order("ONCE", "a")])
    await store.create_orders([coupon_order("ONCE", "b")])
    with pytest.raises(ConstraintViolation):
        await store.put_coupon(CouponSpec("ONCE", "USD", amount_off=1, max_redemptions=1))
    coupon = await store.get_coupon("ONCE")
    assert coupon is not None and coupon.spec.max_redemptions == 3


async def test_promotions_round_trip(store: Store) -> None:
    spec = PromotionSpec(
        "P-1", ("SKU-A",), "12.5", 3, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    )
    promotion, created = await store.put_promotion(spec)
    assert created and promotion.spec == spec
    assert await store.get_promotion("P-1") == promotion
    _, created = await store.put_promotion(replace(spec, percent_off="20"))
    assert not created


async def test_catalog_versions_are_shared_by_every_kind(store: Store) -> None:
    await put(store, "A")
    coupon, _ = await store.put_coupon(CouponSpec("C", "USD", amount_off=1))
    promotion, _ = await store.put_promotion(PromotionSpec("P", ("A",), "5"))
    await put(store, "B")
    since_coupon = await store.catalog_since(coupon.version - 1)
    assert [c.spec.code for c in since_coupon.coupons] == ["C"]
    assert [p.spec.id for p in since_coupon.promotions] == ["P"]
    assert [p.sku for p in since_coupon.products] == ["B"]
    assert since_coupon.latest_version > promotion.version > coupon.version


async def test_price_snapshot_is_stored_with_the_order(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    base = new_order()
    line = OrderLine("SKU-A", "name SKU-A", 3, 333, 100, 180, 1079, "20")
    order = replace(base.order, lines=(line,), subtotal=999, discount=100, tax=180, total=1079, tax_inclusive=True)
    await store.create_orders([NewOrder(order=order, event=base.event, idempotency=base.idempotency)])
    assert await store.get_order(order.id) == order


async def test_one_batch_decides_each_order_on_its_own(store: Store) -> None:
    await put(store, "SKU-A", stock=3)
    await put(store, "SKU-B", stock=10)
    await store.put_coupon(CouponSpec("ONCE", "USD", amount_off=100, max_redemptions=1))
    first = new_order(key="k-a", lines=(("SKU-A", 2, 500),))
    twin = new_order(key="k-a", lines=(("SKU-A", 1, 500),))
    too_big = new_order(key="k-big", lines=(("SKU-B", 1, 500), ("SKU-A", 2, 500)))
    # The key's first holder in this batch is refused, so it leaves no record: this one gets its own try.
    big_twin = new_order(key="k-big", lines=(("SKU-B", 1, 500),))
    with_coupon = [coupon_order("ONCE", f"cc-{i}") for i in range(2)]
    with_coupon = [
        NewOrder(replace(n.order, lines=too_big.order.lines[:1]), n.event, n.idempotency) for n in with_coupon
    ]
    unknown = new_order(lines=(("NOPE", 1, 500),))
    last = new_order(lines=(("SKU-A", 1, 500),))
    outcomes = await store.create_orders([first, twin, too_big, big_twin, *with_coupon, unknown, last])
    assert outcomes[0] == Created(first.order.id)
    assert isinstance(outcomes[1], Duplicate) and outcomes[1].existing.order_id == first.order.id
    assert outcomes[2:] == [
        OutOfStock("SKU-A"),
        Created(big_twin.order.id),
        Created(with_coupon[0].order.id),
        CouponExhausted("ONCE"),
        OutOfStock("NOPE"),
        Created(last.order.id),
    ]
    assert (await stock(store, "SKU-A"), await stock(store, "SKU-B")) == (0, 8), "refused orders reserved nothing"
    coupon = await store.get_coupon("ONCE")
    assert coupon is not None and coupon.redemptions == 1
    assert await store.get_order(too_big.order.id) is None
    stored = await store.get_order(big_twin.order.id)
    assert stored is not None and stored.lines == big_twin.order.lines


async def test_a_refusal_names_the_first_short_sku_in_line_order(store: Store) -> None:
    """The plan's moves follow the lines: both stores name the same SKU (SQLite used to name the
    first by SKU order, PostgreSQL by line order)."""
    await put(store, "SKU-A", stock=1)
    await put(store, "SKU-B", stock=1)
    (outcome,) = await store.create_orders([new_order(lines=(("SKU-B", 5, 100), ("SKU-A", 5, 100)))])
    assert outcome == OutOfStock("SKU-B")
    assert (await stock(store, "SKU-A"), await stock(store, "SKU-B")) == (1, 1)


async def test_one_sku_on_two_lines_reserves_the_sum(store: Store) -> None:
    """Quantities are summed per SKU before the stock is checked: two lines of 6 on a stock of 10
    are refused whole (PostgreSQL checked each line alone, over-reserved and failed the batch)."""
    await put(store, "SKU-A", stock=10)
    (refused,) = await store.create_orders([new_order(lines=(("SKU-A", 6, 100), ("SKU-A", 6, 100)))])
    assert refused == OutOfStock("SKU-A") and await stock(store, "SKU-A") == 10
    (created,) = await store.create_orders([new_order(lines=(("SKU-A", 4, 100), ("SKU-A", 5, 100)))])
    assert isinstance(created, Created) and await stock(store, "SKU-A") == 1


async def test_plans_in_one_batch_apply_as_if_one_after_another(store: Store) -> None:
    """A key twice in one batch whose first holder is refused: the twin is applied in its place, as
    if the plans had come one after another (PostgreSQL used to retry the twin after the whole batch,
    so a later order could take its stock)."""
    await put(store, "SKU-X", stock=1)
    holder = new_order(customer="c-twin", key="k-twin", lines=(("GHOST", 1, 100),))
    twin = new_order(customer="c-twin", key="k-twin", lines=(("SKU-X", 1, 100),))
    other = new_order(customer="c-other", lines=(("SKU-X", 1, 100),))
    outcomes = await store.create_orders([holder, twin, other])
    assert outcomes == [OutOfStock("GHOST"), Created(twin.order.id), OutOfStock("SKU-X")]
    again = new_order(customer="c-twin", key="k-twin", lines=(("SKU-X", 1, 100),))
    (replayed,) = await store.create_orders([again])
    assert isinstance(replayed, Duplicate) and replayed.existing.order_id == twin.order.id


async def test_the_cap_on_unpaid_orders_holds_under_concurrency(store: Store) -> None:
    """Order qualification: a customer with a cap of 3 unpaid orders, 8 orders at once (each its own
    transaction, plus one batch holding two of theirs): exactly 3 are created on every store."""
    await put(store, "SKU-A", stock=100)
    capped = [replace(new_order(customer="capped", lines=(("SKU-A", 1, 100),)), open_orders_cap=3) for _ in range(8)]
    others = [new_order(customer="free", lines=(("SKU-A", 1, 100),)) for _ in range(2)]
    singles = [store.create_orders([n]) for n in capped[:6]]
    outcomes = await asyncio.gather(*singles, store.create_orders([capped[6], others[0], capped[7], others[1]]))
    flat = [o for batch in outcomes for o in batch]
    mine = [*flat[:6], flat[6], flat[8]]
    assert sum(isinstance(o, Created) for o in mine) == 3
    assert mine.count(OpenOrdersExceeded(3)) == 5
    assert isinstance(flat[7], Created) and isinstance(flat[9], Created), "other customers are not capped"
    assert await stock(store, "SKU-A") == 100 - 3 - 2, "refused orders reserved nothing"
    # A refusal leaves no idempotency record: the same key may succeed once there is room.
    refused = next(n for n, o in zip(capped, mine, strict=True) if not isinstance(o, Created))
    assert await store.find_idempotency("capped", refused.idempotency.key) is None


async def test_an_order_priced_before_its_customers_restrictions_changed_is_refused_as_stale(store: Store) -> None:
    """A plan carries the catalog version that priced it; the customer's restrictions row written after
    that version makes it stale — nothing written, no idempotency record — in a batch beside orders
    that are not (another customer's, or priced after the change)."""
    await put(store, "SKU-A", stock=10)
    before = (await store.catalog_since(0)).latest_version
    restrictions, _ = await store.put_restrictions(RestrictionsSpec("watched", blocked=True))
    assert restrictions.version > before
    stale = replace(new_order(customer="watched", lines=(("SKU-A", 1, 100),)), catalog_version=before)
    fresh = replace(new_order(customer="watched", lines=(("SKU-A", 1, 100),)), catalog_version=restrictions.version)
    other = replace(new_order(customer="unwatched", lines=(("SKU-A", 1, 100),)), catalog_version=before)
    unchecked = new_order(customer="watched", lines=(("SKU-A", 1, 100),))
    outcomes = await store.create_orders([stale, other, fresh, unchecked])
    assert outcomes[0] == CatalogStale()
    assert [type(o) for o in outcomes[1:]] == [Created, Created, Created]
    assert await stock(store, "SKU-A") == 10 - 3, "the stale order reserved nothing"
    assert await store.get_order(stale.order.id) is None
    assert await store.find_idempotency("watched", stale.idempotency.key) is None
    # Priced again with the version that holds the change, the same key goes through.
    (again,) = await store.create_orders([replace(stale, catalog_version=restrictions.version)])
    assert isinstance(again, Created)


async def test_an_order_priced_before_its_product_or_coupon_changed_is_refused_as_stale(store: Store) -> None:
    """The same rule for the rows an order's price and limits come from: its products and its coupon."""
    await put(store, "SKU-A", stock=10)
    await put(store, "SKU-B", stock=10)
    await store.put_coupon(CouponSpec("TEN", "USD", percent_off="10"))
    before = (await store.catalog_since(0)).latest_version
    changed, _ = await store.put_product(ProductSpec("SKU-B", "name SKU-B", "USD", 700, 10, max_per_order=1))
    assert changed.version > before
    on_b = replace(new_order(lines=(("SKU-A", 1, 500), ("SKU-B", 1, 700))), catalog_version=before)
    on_a = replace(new_order(lines=(("SKU-A", 1, 500),)), catalog_version=before)
    assert await store.create_orders([on_b, on_a]) == [CatalogStale(), Created(on_a.order.id)]
    assert await stock(store, "SKU-B") == 10 and await stock(store, "SKU-A") == 9
    coupon, _ = await store.put_coupon(CouponSpec("TEN", "USD", percent_off="20"))
    with_coupon = new_order(lines=(("SKU-A", 1, 500),))
    with_coupon = replace(
        with_coupon, order=replace(with_coupon.order, coupon="TEN"), catalog_version=coupon.version - 1
    )
    assert await store.create_orders([with_coupon]) == [CatalogStale()]
    assert await store.find_idempotency("c-1", with_coupon.idempotency.key) is None
    (fresh,) = await store.create_orders([replace(with_coupon, catalog_version=coupon.version)])
    assert isinstance(fresh, Created)
