"""Orders as the business sees them: pure values and their public representation. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from orderfast import _core


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    CANCELED = "CANCELED"


class CancelReason(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"
    EXPIRED = "expired"
    PAYMENT_FAILED = "payment_failed"


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of the price snapshot; amounts in minor units of the order's currency."""

    sku: str
    name: str
    quantity: int
    unit_price: int
    discount: int
    tax: int
    total: int
    tax_rate: str = "0"  # percent, as a decimal string

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    customer_id: str
    status: OrderStatus
    currency: str
    lines: tuple[OrderLine, ...]
    subtotal: int  # minor units, before discounts and tax
    discount: int
    tax: int
    total: int
    coupon: str | None
    tax_inclusive: bool
    created_at: datetime  # UTC, millisecond precision
    cancel_reason: CancelReason | None = None
    captured: int = 0  # minor units paid
    refunded: int = 0  # minor units refunded so far
    review: str | None = None  # why an operator should look at this order, if they should
    sequence: int = 1  # the sequence number of the order's latest event


def to_ms(ts: datetime) -> datetime:
    """Truncated to the millisecond: what every store can hold and give back exactly."""
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)


def utc_now_ms() -> datetime:
    """Now, to the millisecond (to_ms inlined: once per order)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def format_timestamp(ts: datetime) -> str:
    """RFC 3339, UTC, milliseconds: ``2026-11-21T21:29:38.123Z``. (``isoformat``, not
    ``strftime``: several times per order, and strftime's ``%Y`` does not pad years before 1000.)"""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return ts.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def new_order(order_id: str, customer_id: str, priced: _core.PricedOrder, created_at: datetime) -> Order:
    """A new order, awaiting payment, as the core priced it."""
    return Order(
        id=order_id,
        customer_id=customer_id,
        status=OrderStatus.PENDING_PAYMENT,
        currency=priced.currency,
        lines=tuple(
            OrderLine(sku, name, qty, unit, discount, tax, total, rate)
            for sku, name, qty, unit, _subtotal, discount, tax, total, rate in priced.lines
        ),
        subtotal=priced.subtotal,
        discount=priced.discount,
        tax=priced.tax,
        total=priced.total,
        coupon=priced.coupon,
        tax_inclusive=priced.tax_inclusive,
        created_at=created_at,
    )


def order_json(order: Order, change: bytes | None = None) -> bytes:
    """The order as the API shows it, as JSON bytes — rendered in the core, by the same code that
    renders a new order's create response, so the two can never drift. ``change`` adds a
    ``"change"`` member (a transition event's details, as JSON)."""
    return _core.render_order(order, format_timestamp(order.created_at), change)


def order_location(order_id: str) -> str:
    return f"/v1/orders/{order_id}"
