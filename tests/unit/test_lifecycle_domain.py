"""Every transition of the order state machine, and every invalid one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderfast.domain import lifecycle
from orderfast.domain.lifecycle import InvalidTransition, RefundTooLarge, StockEffect
from orderfast.domain.orders import CancelReason, Order, OrderLine, OrderStatus

BASE = Order(
    id="01a2000a-27cb-77b1-bbf8-279bb7785418",
    customer_id="u-1",
    status=OrderStatus.PENDING_PAYMENT,
    currency="USD",
    lines=(OrderLine("A", "a", 2, 500, 0, 0, 1000),),
    subtotal=1000,
    discount=0,
    tax=0,
    total=1000,
    coupon=None,
    tax_inclusive=False,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


def paid() -> Order:
    return lifecycle.pay(BASE, 1000, "USD").order


@pytest.mark.parametrize("reason", list(CancelReason))
def test_cancel_pending_releases_stock(reason: CancelReason) -> None:
    t = lifecycle.cancel(BASE, reason)
    assert (t.order.status, t.order.cancel_reason, t.stock) == (OrderStatus.CANCELED, reason, StockEffect.RELEASE)
    assert (t.event_type, t.event_data, t.order.sequence) == ("order.canceled", {"reason": reason.value}, 2)


def test_pay_sells_the_reservation() -> None:
    t = lifecycle.pay(BASE, 1000, "USD")
    assert (t.order.status, t.order.captured, t.stock, t.event_type) == (
        OrderStatus.PAID,
        1000,
        StockEffect.SELL,
        "order.paid",
    )
    with pytest.raises(ValueError):
        lifecycle.pay(BASE, 999, "USD")
    with pytest.raises(ValueError):
        lifecycle.pay(BASE, 1000, "EUR")


def test_partial_then_full_refund() -> None:
    part = lifecycle.refund(paid(), 300)
    assert (part.order.status, part.order.refunded, part.stock) == (
        OrderStatus.PARTIALLY_REFUNDED,
        300,
        StockEffect.NONE,
    )
    rest = lifecycle.refund(part.order, None)
    assert (rest.order.status, rest.order.refunded, rest.event_data) == (
        OrderStatus.REFUNDED,
        1000,
        {"amount": 700, "refunded_total": 1000},
    )
    assert rest.order.sequence == 4


@pytest.mark.parametrize("amount", [0, -1, 1001])
def test_refunds_never_exceed_what_was_captured(amount: int) -> None:
    with pytest.raises(RefundTooLarge) as info:
        lifecycle.refund(paid(), amount)
    assert info.value.refundable == 1000


@pytest.mark.parametrize(
    ("order", "action"),
    [
        (paid(), lambda o: lifecycle.cancel(o, CancelReason.CUSTOMER)),
        (lifecycle.cancel(BASE, CancelReason.ADMIN).order, lambda o: lifecycle.cancel(o, CancelReason.ADMIN)),
        (lifecycle.cancel(BASE, CancelReason.ADMIN).order, lambda o: lifecycle.pay(o, 1000, "USD")),
        (paid(), lambda o: lifecycle.pay(o, 1000, "USD")),
        (BASE, lambda o: lifecycle.refund(o, None)),
        (lifecycle.cancel(BASE, CancelReason.EXPIRED).order, lambda o: lifecycle.refund(o, 1)),
        (lifecycle.refund(paid(), None).order, lambda o: lifecycle.refund(o, 1)),
        (lifecycle.refund(paid(), None).order, lambda o: lifecycle.cancel(o, CancelReason.CUSTOMER)),
    ],
)
def test_invalid_transitions_name_the_current_state(order: Order, action: object) -> None:
    with pytest.raises(InvalidTransition) as info:
        action(order)  # type: ignore[operator]
    assert info.value.status is order.status
    assert order.status.value in str(info.value)


def test_flag_for_review_changes_nothing_else() -> None:
    flagged = lifecycle.flag_for_review(BASE, "why")
    assert flagged.review == "why" and flagged.status is BASE.status and flagged.sequence == BASE.sequence
