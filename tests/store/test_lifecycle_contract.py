"""Lifecycle against every store: expiry with a fake clock, stock accounting, flags, the feed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from orderfast.domain import lifecycle
from orderfast.domain.catalog import CouponSpec
from orderfast.domain.orders import CancelReason, Order, OrderStatus
from orderfast.services.lifecycle import LifecycleService
from orderfast.services.payments import PaymentNotice
from orderfast.store.base import Change, CouponExhausted, Created, FeedEvent, Store
from orderfast.store.postgres import PostgresStore
from tests.conftest import planned
from tests.store.test_contract import coupon_order, new_order, put, stock

pytestmark = pytest.mark.anyio


async def place(store: Store, sku: str = "SKU-A", qty: int = 2, age: timedelta = timedelta(0)) -> Order:
    new = new_order(lines=((sku, qty, 500),), created_at_offset_ms=-int(age.total_seconds() * 1000))
    await store.create_orders([new])
    return new.order


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_expiry_cancels_only_old_unpaid_orders_and_returns_their_stock(store: Store) -> None:
    await put(store, "SKU-A", stock=100)
    clock = FakeClock()
    service = LifecycleService(store, payment_timeout=900, clock=clock)
    old = await place(store, qty=3, age=timedelta(minutes=20))
    fresh = await place(store, qty=5)
    paid_old = await place(store, qty=1, age=timedelta(minutes=30))
    await store.change_order(paid_old.id, planned(lambda o: Change(transition=lifecycle.pay(o, o.total, o.currency))))
    assert await stock(store, "SKU-A") == 91
    assert await service.sweep() == 1
    expired = await store.get_order(old.id)
    assert expired is not None and expired.status is OrderStatus.CANCELED
    assert expired.cancel_reason is CancelReason.EXPIRED and expired.sequence == 2
    assert await stock(store, "SKU-A") == 94, "the expired order's 3 are back"
    clock.now += timedelta(minutes=16)  # now the fresh one is past the timeout too
    assert await service.sweep() == 1
    assert (await store.get_order(fresh.id)).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert await service.sweep() == 0
    assert (await store.get_order(paid_old.id)).status is OrderStatus.PAID  # type: ignore[union-attr]


async def test_concurrent_sweepers_cancel_each_order_once(store: Store) -> None:
    await put(store, "SKU-A", stock=100)
    orders = [await place(store, qty=1, age=timedelta(hours=1)) for _ in range(12)]
    service = LifecycleService(store, payment_timeout=60)
    counts = await asyncio.gather(*(service.sweep(batch=3) for _ in range(4)))
    assert sum(counts) == 12
    assert await stock(store, "SKU-A") == 100
    for o in orders:
        after = await store.get_order(o.id)
        assert after is not None and after.sequence == 2, "exactly one cancel event each"


async def test_mismatched_payment_is_flagged_and_recorded(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    order = await place(store)
    service = LifecycleService(store)
    notice = PaymentNotice("evt-1", order.id, "succeeded", "9.99", "USD")
    result = await service.payment(notice)
    assert (result.status, result.outcome, result.order.status) == (422, "amount_mismatch", OrderStatus.PENDING_PAYMENT)
    stored = await store.get_order(order.id)
    assert stored is not None and stored.review is not None
    again = await service.payment(notice)
    assert (again.status, again.outcome) == (422, "amount_mismatch")
    record = await store.find_payment("evt-1")
    assert record is not None and record.http_status == 422


async def test_concurrent_redeliveries_apply_once(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    order = await place(store)
    service = LifecycleService(store)
    notice = PaymentNotice("evt-dup", order.id, "succeeded", "10.00", "USD")
    results = await asyncio.gather(*(service.payment(notice) for _ in range(5)))
    assert {r.status for r in results} == {200}
    after = await store.get_order(order.id)
    assert after is not None and after.status is OrderStatus.PAID and after.sequence == 2


async def feed(store: Store, after: int, expect: int) -> list[FeedEvent]:
    """The feed from ``after``, polled (bounded) until ``expect`` events are in: on PostgreSQL it
    holds back while any earlier write transaction on the server is still in flight."""
    for _ in range(200):
        events = await store.events_after(after, 100)
        if len(events) >= expect:
            break
        await asyncio.sleep(0.02)
    return events


async def test_feed_is_in_order_and_complete(store: Store) -> None:
    await put(store, "SKU-A", stock=10)
    first = await place(store)
    await store.change_order(first.id, planned(lambda o: Change(transition=lifecycle.cancel(o, CancelReason.ADMIN))))
    second = await place(store)
    events = await feed(store, 0, 3)
    assert [(e.envelope["aggregate_id"], e.envelope["sequence"]) for e in events] == [
        (first.id, 1),
        (first.id, 2),
        (second.id, 1),
    ]
    assert [e.position for e in events] == sorted(e.position for e in events)
    assert await store.events_after(events[1].position, 100) == events[2:]


async def test_feed_never_skips_a_transaction_that_commits_late(pg_store: PostgresStore) -> None:
    """Hold one outbox insert's transaction open while later ones commit: the feed must not move
    past it, and once it commits, its event appears — nothing is skipped. (PostgreSQL only: SQLite
    has one writer, so a transaction cannot stay open while later ones commit.)"""
    store = pg_store
    await put(store, "SKU-A", stock=100)
    await place(store)
    seen = [e.envelope["aggregate_id"] for e in await feed(store, 0, 1)]
    cursor = (await feed(store, 0, 1))[-1].position
    async with store.pool.acquire() as slow:
        tx = slow.transaction()
        await tx.start()
        await slow.execute(
            "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at) "
            "VALUES (gen_random_uuid(), 'order', gen_random_uuid(), 1, 'order.created', '{\"late\": true}', now())"
        )
        later = [await place(store) for _ in range(3)]  # these commit while the slow one is open
        page = await store.events_after(cursor, 100)
        assert page == [], "the feed waits for the transaction still in flight"
        await tx.commit()
    page = await feed(store, cursor, 4)
    assert [e.envelope.get("aggregate_id") for e in page[1:]] == [o.id for o in later]
    assert page[0].envelope == {"late": True}, "the late commit is not skipped: it comes first"
    assert len(seen) == 1


async def test_feed_positions_survive_a_rolled_back_insert(pg_store: PostgresStore) -> None:
    store = pg_store
    await put(store, "SKU-A", stock=100)
    async with store.pool.acquire() as conn:
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, "
                    "occurred_at) VALUES (gen_random_uuid(), 'order', gen_random_uuid(), 1, 'x', '{}', now())"
                )
                raise asyncpg.PostgresError("roll back")
        except asyncpg.PostgresError:
            pass
    a = await place(store)
    events = await feed(store, 0, 1)
    assert [e.envelope["aggregate_id"] for e in events] == [a.id]


async def test_a_change_is_stamped_with_the_services_clock(store: Store) -> None:
    """The service decides when (its clock), not the store: the event says the clock's time."""
    await put(store, "SKU-A", stock=10)
    clock = FakeClock()
    clock.now = datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    service = LifecycleService(store, clock=clock)
    placed = await place(store, qty=1)
    await service.cancel(placed.id, placed.customer_id, False)
    events: list[FeedEvent] = []
    for _ in range(100):  # the feed may trail the commit by a moment on PostgreSQL: poll, bounded
        events = [e for e in await store.events_after(0, 1000) if e.envelope["aggregate_id"] == placed.id]
        if len(events) == 2:
            break
        await asyncio.sleep(0.02)
    assert [e.envelope["type"] for e in events] == ["order.created", "order.canceled"]
    assert events[1].envelope["occurred_at"] == "2031-01-02T03:04:05.678Z"


async def test_a_cancel_or_an_expiry_gives_the_coupon_redemption_back(store: Store) -> None:
    """Intended: an unpaid order that is canceled (by its customer, an admin, a failed payment or
    expiry) gives back everything it held — its stock and its coupon's redemption. A paid order,
    even refunded, keeps it."""
    await put(store, "SKU-A", stock=10)
    await store.put_coupon(CouponSpec("ONCE", "USD", amount_off=1, max_redemptions=1))
    first, second = coupon_order("ONCE", "a"), coupon_order("ONCE", "b")
    assert isinstance((await store.create_orders([first]))[0], Created)
    assert (await store.create_orders([second]))[0] == CouponExhausted("ONCE")
    await store.change_order(
        first.order.id, planned(lambda o: Change(transition=lifecycle.cancel(o, CancelReason.ADMIN)))
    )
    assert (await store.get_coupon("ONCE")).redemptions == 0  # type: ignore[union-attr]
    again = coupon_order("ONCE", "b")
    assert isinstance((await store.create_orders([again]))[0], Created)
    # Expiry gives it back too (the sweep's whole batch at once).
    clock = FakeClock()
    clock.now += timedelta(hours=1)
    assert await LifecycleService(store, payment_timeout=900, clock=clock).sweep() == 1
    assert (await store.get_coupon("ONCE")).redemptions == 0  # type: ignore[union-attr]
