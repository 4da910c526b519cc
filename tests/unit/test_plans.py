"""Plans: a decision turned into every write it implies, by the domain, before any store sees it."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

from orderfast.domain import lifecycle
from orderfast.domain.orders import CancelReason, Order, OrderStatus
from orderfast.domain.plans import Change, PaymentRecord, StockMove, merged_moves, plan_change
from tests.store.test_contract import new_order

AT = datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)


def order(*lines: tuple[str, int]) -> Order:
    return replace(new_order(lines=tuple((sku, q, 100) for sku, q in lines)).order, created_at=AT)


def ids() -> object:
    counter = itertools.count(1)
    return lambda: f"id-{next(counter)}"


def test_a_cancel_puts_each_sku_back_in_sku_order_with_its_event_at_the_plan_time() -> None:
    o = order(("B", 2), ("A", 1))
    plan = plan_change(o, Change(transition=lifecycle.cancel(o, CancelReason.CUSTOMER)), at=AT, new_id=ids())  # type: ignore[arg-type]
    assert plan.stock == (StockMove("A", 1, -1), StockMove("B", 2, -2))
    assert plan.after.status is OrderStatus.CANCELED and plan.writes_order
    assert plan.event is not None and plan.event.id == "id-1" and plan.event.sequence == 2
    assert plan.event.occurred_at == AT and plan.event.envelope["occurred_at"] == "2026-11-29T12:00:00.123Z"
    assert plan.refund is None and plan.payment is None


def test_a_payment_sells_the_reservation_and_carries_its_record() -> None:
    o = order(("A", 3))
    record = PaymentRecord("evt-1", o.id, "succeeded", o.total, "USD", "paid", 200)
    change = Change(transition=lifecycle.pay(o, o.total, "USD"), payment=record)
    plan = plan_change(o, change, at=AT, new_id=ids())  # type: ignore[arg-type]
    assert plan.stock == (StockMove("A", 0, -3),)
    assert plan.payment is record and plan.after.captured == o.total


def test_a_refund_row_is_the_difference_the_transition_made() -> None:
    paid = replace(order(("A", 3)), status=OrderStatus.PAID, captured=300)
    plan = plan_change(paid, Change(transition=lifecycle.refund(paid, 120)), at=AT, new_id=ids())  # type: ignore[arg-type]
    assert plan.refund is not None and (plan.refund.amount, plan.refund.order_id) == (120, paid.id)
    assert plan.stock == () and plan.after.refunded == 120


def test_a_review_flag_alone_writes_the_row_and_no_event() -> None:
    o = order(("A", 1))
    plan = plan_change(o, Change(review="amount mismatch"), at=AT, new_id=ids())  # type: ignore[arg-type]
    assert plan.writes_order and plan.after.review == "amount mismatch" and plan.after.sequence == o.sequence
    assert plan.event is None and plan.stock == ()
    untouched = plan_change(o, Change(), at=AT, new_id=ids())  # type: ignore[arg-type]
    assert not untouched.writes_order


def test_a_batch_moves_each_sku_once_in_one_global_order() -> None:
    a, b = order(("C", 1), ("A", 2)), order(("A", 5), ("B", 1))
    plans = [
        plan_change(x, Change(transition=lifecycle.cancel(x, CancelReason.EXPIRED)), at=AT, new_id=ids())  # type: ignore[arg-type]
        for x in (a, b)
    ]
    assert merged_moves(plans) == [StockMove("A", 7, -7), StockMove("B", 1, -1), StockMove("C", 1, -1)]


def test_only_a_cancel_gives_the_coupon_back() -> None:
    o = replace(order(("A", 1)), coupon="SAVE")
    canceled = plan_change(o, Change(transition=lifecycle.cancel(o, CancelReason.EXPIRED)), at=AT, new_id=ids())  # type: ignore[arg-type]
    paid = plan_change(o, Change(transition=lifecycle.pay(o, o.total, "USD")), at=AT, new_id=ids())  # type: ignore[arg-type]
    assert (canceled.coupon_release, paid.coupon_release) == ("SAVE", None)
