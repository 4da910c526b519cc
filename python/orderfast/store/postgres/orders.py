"""Order SQL for PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from orderfast.domain.orders import CancelReason, Order, OrderLine, OrderStatus
from orderfast.store.base import (
    CatalogStale,
    CouponExhausted,
    Created,
    CreateOutcome,
    Duplicate,
    IdempotencyRecord,
    NewOrder,
    OpenOrdersExceeded,
    OutOfStock,
    StoreError,
)

ORDER_COLUMNS = (
    "id, customer_id, status, currency, subtotal_minor, discount_minor, tax_minor, total_minor, "
    "coupon_code, tax_inclusive, created_at"
)
LIFECYCLE_COLUMNS = "cancel_reason, captured_minor, refunded_minor, review, last_sequence"
LINE_COLUMNS = "sku, name, quantity, unit_price_minor, discount_minor, tax_minor, total_minor, tax_rate"
# An order's lines as an array of records in the order's own row: reads are one round trip.
WITH_LINES = (
    "ARRAY(SELECT ROW(l.sku, l.name, l.quantity, l.unit_price_minor, l.discount_minor, l.tax_minor, "
    "l.total_minor, l.tax_rate) FROM order_lines l WHERE l.order_id = orders.id ORDER BY l.line_no) AS lines"
)

_CREATE_BATCH = (
    "SELECT i, outcome, detail FROM orderfast_create_orders(" + ", ".join(f"${n}" for n in range(1, 37)) + ")"
)


async def create_batch(conn: asyncpg.Connection, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
    """Applies the plans as if one after another, in list order, each whole or not at all, all in
    one transaction and one commit (migrations 0005, 0006, 0008, 0009). An error raised here fails the batch.

    One call of the batch function applies plans whose keys differ (it takes the keys' locks in
    key order). A key twice in the batch — which the worker's in-process key map keeps out of
    production traffic — splits it: the plans from the twin on go in a later call of the same
    transaction, so the twin sees what its holder did, as on SQLite."""
    keys = {(new.idempotency.principal, new.idempotency.key) for new in batch}
    if len(keys) == len(batch):
        return await _apply_segment(conn, batch)
    outcomes: list[CreateOutcome] = []
    async with conn.transaction():
        for segment in _segments(batch):
            outcomes += await _apply_segment(conn, segment)
    return outcomes


def _segments(batch: Sequence[NewOrder]) -> list[Sequence[NewOrder]]:
    segments: list[Sequence[NewOrder]] = []
    start = 0
    seen: set[tuple[str, str]] = set()
    for i, new in enumerate(batch):
        key = (new.idempotency.principal, new.idempotency.key)
        if key in seen:
            segments.append(batch[start:i])
            start, seen = i, set()
        seen.add(key)
    segments.append(batch[start:])
    return segments


async def _apply_segment(conn: asyncpg.Connection, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
    orders_ = [new.order for new in batch]
    idems = [new.idempotency for new in batch]
    events = [new.event for new in batch]
    starts: list[int] = []
    counts: list[int] = []
    lines: list[OrderLine] = []
    for order in orders_:
        starts.append(len(lines) + 1)
        counts.append(len(order.lines))
        lines.extend(order.lines)
    # Where every plan's moves are its lines (no SKU twice in an order), the lines say it all.
    moves = None
    if any(len({ln.sku for ln in o.lines}) != len(o.lines) for o in orders_):
        moves = orjson.dumps([[(m.sku, m.reserved) for m in new.stock] for new in batch]).decode()
    # The function's arguments: one array per column, in its parameter order (migration 0009).
    # (Comprehensions, not getattr/attrgetter: half the cost, on every order.)
    rows = await conn.fetch(
        _CREATE_BATCH,
        [o.id for o in orders_],
        [o.customer_id for o in orders_],
        [o.status.value for o in orders_],
        [o.currency for o in orders_],
        [o.subtotal for o in orders_],
        [o.discount for o in orders_],
        [o.tax for o in orders_],
        [o.total for o in orders_],
        [o.coupon for o in orders_],
        [o.tax_inclusive for o in orders_],
        [o.created_at for o in orders_],
        starts,
        counts,
        [r.principal for r in idems],
        [r.key for r in idems],
        [r.fingerprint for r in idems],
        [r.status for r in idems],
        [r.body for r in idems],
        [e.id for e in events],
        [e.aggregate_type for e in events],
        [e.aggregate_id for e in events],
        [e.sequence for e in events],
        [e.type for e in events],
        [orjson.dumps(e.envelope).decode() for e in events],
        [e.occurred_at for e in events],
        [ln.sku for ln in lines],
        [ln.name for ln in lines],
        [ln.quantity for ln in lines],
        [ln.unit_price for ln in lines],
        [ln.discount for ln in lines],
        [ln.tax for ln in lines],
        [ln.total for ln in lines],
        [ln.tax_rate for ln in lines],
        moves,
        [new.open_orders_cap for new in batch],
        [new.catalog_version for new in batch],
    )
    outcomes: list[CreateOutcome | None] = [None] * len(batch)
    for i, outcome, detail in rows:
        k = i - 1
        if outcome == "created":
            outcomes[k] = Created(orders_[k].id)
        elif outcome == "out_of_stock":
            outcomes[k] = OutOfStock(detail)
        elif outcome == "coupon_exhausted":
            outcomes[k] = CouponExhausted(detail)
        elif outcome == "open_orders_exceeded":
            outcomes[k] = OpenOrdersExceeded(int(detail))
        elif outcome == "catalog_stale":
            outcomes[k] = CatalogStale()
        else:
            # The key's holder committed before (its record is visible now: the insert waited for it).
            existing = await find_idempotency(conn, idems[k].principal, idems[k].key)
            if existing is None:
                raise StoreError("idempotency record conflicted but cannot be read")
            outcomes[k] = Duplicate(existing)
    assert all(o is not None for o in outcomes), "the function answers for every plan"
    return [o for o in outcomes if o is not None]


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
    rows = await conn.fetch(
        f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS}, {WITH_LINES} FROM orders WHERE id = $1", order_id
    )
    orders = await orders_from_rows(conn, rows)
    return orders[0] if orders else None


async def list_orders(conn: asyncpg.Connection, customer_id: str, limit: int, before: str | None) -> list[Order]:
    if before is None:
        rows = await conn.fetch(
            f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS}, {WITH_LINES} FROM orders "
            "WHERE customer_id = $1 ORDER BY id DESC LIMIT $2",
            customer_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS}, {WITH_LINES} FROM orders "
            "WHERE customer_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            customer_id,
            before,
            limit,
        )
    return await orders_from_rows(conn, rows)


async def orders_from_rows(conn: asyncpg.Connection, rows: Sequence[Any]) -> list[Order]:
    if not rows:
        return []
    lines: dict[Any, list[OrderLine]]
    if "lines" in rows[0].keys():  # noqa: SIM118 — a Record's `in` looks at values; WITH_LINES was selected
        lines = {r["id"]: [OrderLine(*tuple(line)) for line in r["lines"]] for r in rows}
    else:
        ids = [r["id"] for r in rows]
        lines = {i: [] for i in ids}
        for r in await conn.fetch(
            f"SELECT order_id, {LINE_COLUMNS} FROM order_lines WHERE order_id = ANY($1::uuid[]) "
            "ORDER BY order_id, line_no",
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
