"""Orders as the business sees them: pure values and their public representation. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

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
    """Now, to the millisecond."""
    return to_ms(datetime.now(UTC))


def format_timestamp(ts: datetime) -> str:
    """RFC 3339, UTC, milliseconds: ``2026-11-21T21:29:38.123Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def price_document(
    currency: str,
    lines: Any,
    subtotal: int,
    discount: int,
    tax: int,
    total: int,
    coupon: str | None,
    tax_inclusive: bool,
) -> dict[str, Any]:
    """The priced part of an order or quote: amounts as decimal strings in ``currency``.

    ``lines`` holds (sku, name, quantity, unit_price, discount, tax, total, tax_rate) rows.
    """
    fmt = _core.format_amount
    return {
        "currency": currency,
        "lines": [
            {
                "sku": sku,
                "name": name,
                "quantity": quantity,
                "unit_price": fmt(unit_price, currency),
                "discount": fmt(line_discount, currency),
                "tax": fmt(line_tax, currency),
                "tax_rate": tax_rate,
                "total": fmt(line_total, currency),
            }
            for sku, name, quantity, unit_price, line_discount, line_tax, line_total, tax_rate in lines
        ],
        "subtotal": fmt(subtotal, currency),
        "discount": fmt(discount, currency),
        "tax": fmt(tax, currency),
        "total": fmt(total, currency),
        "coupon": coupon,
        "prices_include_tax": tax_inclusive,
    }


def order_document(order: Order) -> dict[str, Any]:
    """The order as the API shows it."""
    doc: dict[str, Any] = {"id": order.id, "status": order.status.value, "customer_id": order.customer_id}
    doc.update(
        price_document(
            order.currency,
            (
                (ln.sku, ln.name, ln.quantity, ln.unit_price, ln.discount, ln.tax, ln.total, ln.tax_rate)
                for ln in order.lines
            ),
            order.subtotal,
            order.discount,
            order.tax,
            order.total,
            order.coupon,
            order.tax_inclusive,
        )
    )
    doc["cancel_reason"] = None if order.cancel_reason is None else order.cancel_reason.value
    doc["refunded"] = _core.format_amount(order.refunded, order.currency)
    doc["created_at"] = format_timestamp(order.created_at)
    return doc


def order_location(order_id: str) -> str:
    return f"/v1/orders/{order_id}"
