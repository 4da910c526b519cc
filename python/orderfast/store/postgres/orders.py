"""Order SQL for PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from orderfast.domain.orders import CancelReason, Order, OrderLine, OrderStatus
from orderfast.store.base import (
    CouponExhausted,
    Created,
    CreateOutcome,
    Duplicate,
    IdempotencyRecord,
    NewOrder,
    OutOfStock,
    StoreError,
)

ORDER_COLUMNS = (
    "id, customer_id, status, currency, subtotal_minor, discount_minor, tax_minor, total_minor, "
    "coupon_code, tax_inclusive, created_at"
)
LIFECYCLE_COLUMNS = "cancel_reason, captured_minor, refunded_minor, review, last_sequence"
LINE_COLUMNS = "sku, name, quantity, unit_price_minor, discount_minor, tax_minor, total_minor, tax_rate"

_INSERT_IDEMPOTENCY = """
INSERT INTO idempotency_keys (principal, key, fingerprint, status, response_body, order_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING true
"""
_REDEEM = """
UPDATE coupons SET redemptions = redemptions + 1
WHERE code = $1 AND (max_redemptions IS NULL OR redemptions < max_redemptions)
RETURNING redemptions
"""
_RESERVE = (
    "UPDATE products SET stock = stock - $2, reserved = reserved + $2 WHERE sku = $1 AND stock >= $2 RETURNING stock"
)

_INSERT_ORDER = f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
_INSERT_LINES = f"""
INSERT INTO order_lines (order_id, line_no, {LINE_COLUMNS})
SELECT $1, *
FROM unnest($2::int[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[], $8::bigint[],
            $9::bigint[], $10::text[])
"""
_INSERT_EVENT = """
INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
"""


class _Rollback(Exception):
    def __init__(self, outcome: CreateOutcome) -> None:
        self.outcome = outcome


async def create_one(conn: asyncpg.Connection, new: NewOrder, *, retry: bool = True) -> CreateOutcome:
    order, idem, event = new.order, new.idempotency, new.event
    try:
        async with conn.transaction():
            # The idempotency record first: a concurrent twin waits here on the unique index
            # until the first commits or rolls back, and then sees the committed record.
            inserted = await conn.fetchval(
                _INSERT_IDEMPOTENCY,
                idem.principal,
                idem.key,
                idem.fingerprint,
                idem.status,
                idem.body,
                order.id,
                order.created_at,
            )
            if not inserted:
                raise _Rollback(Duplicate(IdempotencyRecord("", "", b"", 0, b"", "")))
            if order.coupon is not None and await conn.fetchval(_REDEEM, order.coupon) is None:
                raise _Rollback(CouponExhausted(order.coupon))
            # Sorted by SKU: every transaction takes product row locks in the same order.
            for line in sorted(order.lines, key=lambda ln: ln.sku):
                if await conn.fetchval(_RESERVE, line.sku, line.quantity) is None:
                    raise _Rollback(OutOfStock(line.sku))
            await conn.execute(
                _INSERT_ORDER,
                order.id,
                order.customer_id,
                order.status.value,
                order.currency,
                order.subtotal,
                order.discount,
                order.tax,
                order.total,
                order.coupon,
                order.tax_inclusive,
                order.created_at,
            )
            lines = order.lines
            await conn.execute(
                _INSERT_LINES,
                order.id,
                list(range(1, len(lines) + 1)),
                [ln.sku for ln in lines],
                [ln.name for ln in lines],
                [ln.quantity for ln in lines],
                [ln.unit_price for ln in lines],
                [ln.discount for ln in lines],
                [ln.tax for ln in lines],
                [ln.total for ln in lines],
                [ln.tax_rate for ln in lines],
            )
            await conn.execute(
                _INSERT_EVENT,
                event.id,
                event.aggregate_type,
                event.aggregate_id,
                event.sequence,
                event.type,
                orjson.dumps(event.envelope).decode(),
                event.occurred_at,
            )
    except _Rollback as rb:
        if isinstance(rb.outcome, Duplicate):
            existing = await find_idempotency(conn, idem.principal, idem.key)
            if existing is None and retry:  # the holder's record vanished since: try once more
                return await create_one(conn, new, retry=False)
            if existing is None:
                raise StoreError("idempotency record conflicted but cannot be read") from None
            return Duplicate(existing)
        return rb.outcome
    return Created(order.id)


async def find_idempotency(conn: asyncpg.Connection, principal: str, key: str) -> IdempotencyRecord | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, status, response_body, order_id FROM idempotency_keys WHERE principal = $1 AND key = $2",
        principal,
        key,
    )
    if row is None:
        return None
    return IdempotencyRecord(principal, key, bytes(row[0]), int(row[1]), bytes(row[2]), str(row[3]))


async def get_order(conn: asyncpg.Connection, order_id: str) -> Order | None:
    rows = await conn.fetch(f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders WHERE id = $1", order_id)
    orders = await orders_from_rows(conn, rows)
    return orders[0] if orders else None


async def list_orders(conn: asyncpg.Connection, customer_id: str, limit: int, before: str | None) -> list[Order]:
    if before is None:
        rows = await conn.fetch(
            f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders WHERE customer_id = $1 ORDER BY id DESC LIMIT $2",
            customer_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders "
            "WHERE customer_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            customer_id,
            before,
            limit,
        )
    return await orders_from_rows(conn, rows)


async def orders_from_rows(conn: asyncpg.Connection, rows: Sequence[Any]) -> list[Order]:
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    lines: dict[Any, list[OrderLine]] = {i: [] for i in ids}
    for r in await conn.fetch(
        f"SELECT order_id, {LINE_COLUMNS} FROM order_lines WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, line_no",
        ids,
    ):
        lines[r["order_id"]].append(OrderLine(*tuple(r)[1:]))
    return [
        Order(
            id=str(r["id"]),
            customer_id=r["customer_id"],
            status=OrderStatus(r["status"]),
            currency=r["currency"],
            lines=tuple(lines[r["id"]]),
            subtotal=r["subtotal_minor"],
            discount=r["discount_minor"],
            tax=r["tax_minor"],
            total=r["total_minor"],
            coupon=r["coupon_code"],
            tax_inclusive=r["tax_inclusive"],
            created_at=r["created_at"],
            cancel_reason=None if r["cancel_reason"] is None else CancelReason(r["cancel_reason"]),
            captured=r["captured_minor"],
            refunded=r["refunded_minor"],
            review=r["review"],
            sequence=r["last_sequence"],
        )
        for r in rows
    ]
