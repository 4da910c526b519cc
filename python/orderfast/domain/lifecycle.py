"""The order state machine: every transition, pure. No I/O.

    PENDING_PAYMENT ──pay──▶ PAID ──refund──▶ PARTIALLY_REFUNDED ──refund──▶ REFUNDED
          │                    └──────────────refund (all)──────────────────▶ REFUNDED
          └──cancel(customer | admin | expired | payment_failed)──▶ CANCELED

A transition returns the changed order and what the store must do with it: the event to write,
and whether the order's stock goes back to the shelf (cancel) or leaves the reservation as sold
(pay). An invalid transition raises InvalidTransition naming the current state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from orderfast.domain.orders import CancelReason, Order, OrderStatus


class StockEffect(StrEnum):
    NONE = "none"
    RELEASE = "release"  # reserved stock goes back to available (cancel, expiry, failed payment)
    SELL = "sell"  # reserved stock is sold: it leaves the reservation for good (payment)


class InvalidTransition(Exception):
    def __init__(self, order: Order, action: str) -> None:
        super().__init__(f"cannot {action} an order that is {order.status.value}")
        self.status = order.status
        self.action = action


class RefundTooLarge(Exception):
    def __init__(self, refundable: int) -> None:
        super().__init__("the refund exceeds what was captured and not yet refunded")
        self.refundable = refundable


@dataclass(frozen=True, slots=True)
class Transition:
    order: Order  # the order after the change, with its sequence advanced
    event_type: str
    event_data: dict[str, Any]
    stock: StockEffect = StockEffect.NONE


def _next(order: Order, **changes: Any) -> Order:
    return replace(order, sequence=order.sequence + 1, **changes)


def cancel(order: Order, reason: CancelReason) -> Transition:
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition(order, "cancel")
    after = _next(order, status=OrderStatus.CANCELED, cancel_reason=reason)
    return Transition(after, "order.canceled", {"reason": reason.value}, StockEffect.RELEASE)


def pay(order: Order, amount: int, currency: str) -> Transition:
    """A successful payment of exactly the order total, in its currency."""
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition(order, "pay")
    if currency != order.currency or amount != order.total:
        raise ValueError("amount mismatch: use flag_for_review")
    after = _next(order, status=OrderStatus.PAID, captured=amount)
    return Transition(after, "order.paid", {"amount": amount, "currency": currency}, StockEffect.SELL)


def refund(order: Order, amount: int | None) -> Transition:
    """Refunds ``amount`` (minor units), or everything still refundable when None."""
    if order.status not in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED):
        raise InvalidTransition(order, "refund")
    refundable = order.captured - order.refunded
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise RefundTooLarge(refundable)
    refunded = order.refunded + amount
    status = OrderStatus.REFUNDED if refunded == order.captured else OrderStatus.PARTIALLY_REFUNDED
    after = _next(order, status=status, refunded=refunded)
    return Transition(after, "order.refunded", {"amount": amount, "refunded_total": refunded})


def flag_for_review(order: Order, why: str) -> Order:
    """Marks an order for an operator (no state change, no event)."""
    return replace(order, review=why)
