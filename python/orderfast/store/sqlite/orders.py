"""Order SQL for SQLite; every function runs on the store's own thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

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
)
from orderfast.store.sqlite.codec import from_ms, to_ms

ORDER_COLUMNS = (
    "id, customer_id, status, currency, subtotal_minor, discount_minor, tax_minor, total_minor, "
    "coupon_code, tax_inclusive, created_at"
)
LIFECYCLE_COLUMNS = "cancel_reason, captured_minor, refunded_minor, review, last_sequence"
LINE_COLUMNS = "sku, name, quantity, unit_price_minor, discount_minor, tax_minor, total_minor, tax_rate"


class _Rollback(Exception):
    def __init__(self, outcome: CreateOutcome) -> None:
        self.outcome = outcome


def create_batch(conn: sqlite3.Connection, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
    """The whole batch in one transaction — one commit, one fsync — each order inside its own
    savepoint, so a refused order leaves nothing behind and does not touch its neighbours. An
    unexpected error rolls the whole batch back and is raised (the caller retries order by order)."""
    outcomes: list[CreateOutcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for new in batch:
            conn.execute("SAVEPOINT one_order")
            try:
                outcomes.append(_write_one(conn, new))
            except _Rollback as rb:
                conn.execute("ROLLBACK TO one_order")
                outcomes.append(rb.outcome)
            conn.execute("RELEASE one_order")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return outcomes


def _stale(conn: sqlite3.Connection, new: NewOrder, priced_at: int) -> bool:
    """Whether the customer's restrictions, the coupon or one of the products changed after the
    catalog version that priced the plan (as they are now, not as the pricing process last loaded
    them; promotions are not checked, as on PostgreSQL)."""
    skus = [move.sku for move in new.stock]
    found = conn.execute(
        "SELECT 1 FROM customer_restrictions WHERE customer_id = ? AND version > ? "
        "UNION ALL SELECT 1 FROM coupons WHERE code = ? AND version > ? "
        f"UNION ALL SELECT 1 FROM products WHERE sku IN ({', '.join('?' * len(skus))}) AND version > ? LIMIT 1",
        (new.order.customer_id, priced_at, new.coupon, priced_at, *skus, priced_at),
    ).fetchone()
    return found is not None


def _write_one(conn: sqlite3.Connection, new: NewOrder) -> CreateOutcome:
    order, idem, event = new.order, new.idempotency, new.event
    # The idempotency record first: a duplicate key costs no stock work at all.
    cur = conn.execute(
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status, response_body, "
        "order_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            idem.principal,
            idem.key,
            idem.fingerprint,
            idem.status,
            idem.body,
            order.id,
            to_ms(order.created_at),
        ),
    )
    if cur.rowcount == 0:
        existing = find_idempotency(conn, idem.principal, idem.key)
        assert existing is not None
        raise _Rollback(Duplicate(existing))
    if (priced_at := new.catalog_version) is not None and _stale(conn, new, priced_at):
        raise _Rollback(CatalogStale())
    if (cap := new.open_orders_cap) is not None:
        # One writer holds the whole database: this count cannot change before the commit.
        (unpaid,) = conn.execute(
            "SELECT count(*) FROM orders WHERE customer_id = ? AND status = 'PENDING_PAYMENT'", (order.customer_id,)
        ).fetchone()
        if unpaid >= cap:
            raise _Rollback(OpenOrdersExceeded(cap))
    if (code := new.coupon) is not None:
        cur = conn.execute(
            "UPDATE coupons SET redemptions = redemptions + 1 WHERE code = ? "
            "AND (max_redemptions IS NULL OR redemptions < max_redemptions)",
            (code,),
        )
        if cur.rowcount == 0:
            raise _Rollback(CouponExhausted(code))
    # In the plan's order (one writer holds the whole database: no lock order to keep).
    for move in new.stock:
        cur = conn.execute(
            "UPDATE products SET stock = stock + ?, reserved = reserved + ? WHERE sku = ? AND stock + ? >= 0",
            (move.stock, move.reserved, move.sku, move.stock),
        )
        if cur.rowcount == 0:
            raise _Rollback(OutOfStock(move.sku))
    conn.execute(
        f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            order.id,
            order.customer_id,
            order.status.value,
            order.currency,
            order.subtotal,
            order.discount,
            order.tax,
            order.total,
            order.coupon,
            int(order.tax_inclusive),
            to_ms(order.created_at),
        ),
    )
    conn.executemany(
        f"INSERT INTO order_lines (order_id, line_no, {LINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                order.id,
                i,
                ln.sku,
                ln.name,
                ln.quantity,
                ln.unit_price,
                ln.discount,
                ln.tax,
                ln.total,
                ln.tax_rate,
            )
            for i, ln in enumerate(order.lines, 1)
        ],
    )
    conn.execute(
        "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, "
        "envelope, occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            event.id,
            event.aggregate_type,
            event.aggregate_id,
            event.sequence,
            event.type,
            orjson.dumps(event.envelope).decode(),
            to_ms(event.occurred_at),
        ),
    )
    return Created(order.id)


def find_idempotency(conn: sqlite3.Connection, principal: str, key: str) -> IdempotencyRecord | None:
    row = conn.execute(
        "SELECT fingerprint, status, response_body, order_id FROM idempotency_keys WHERE principal = ? AND key = ?",
        (principal, key),
    ).fetchone()
    if row is None:
        return None
    return IdempotencyRecord(principal, key, bytes(row[0]), int(row[1]), bytes(row[2]), row[3])


def get_order(conn: sqlite3.Connection, order_id: str) -> Order | None:
    row = conn.execute(f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders WHERE id = ?", (order_id,)).fetchone()
    return None if row is None else _orders(conn, [row])[0]


def list_orders(conn: sqlite3.Connection, customer_id: str, limit: int, before: str | None) -> list[Order]:
    if before is None:
        rows = conn.execute(
            f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders WHERE customer_id = ? ORDER BY id DESC LIMIT ?",
            (customer_id, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders "
            "WHERE customer_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (customer_id, before, limit),
        ).fetchall()
    return _orders(conn, rows)


def _orders(conn: sqlite3.Connection, rows: list[Any]) -> list[Order]:
    if not rows:
        return []
    ids = [r[0] for r in rows]
    marks = ",".join("?" * len(ids))
    lines: dict[str, list[OrderLine]] = {i: [] for i in ids}
    for oid, *cols in conn.execute(
        f"SELECT order_id, {LINE_COLUMNS} FROM order_lines WHERE order_id IN ({marks}) ORDER BY order_id, line_no",
        ids,
    ):
        lines[oid].append(OrderLine(*cols))
    return [
        Order(
            id=r[0],
            customer_id=r[1],
            status=OrderStatus(r[2]),
            currency=r[3],
            lines=tuple(lines[r[0]]),
            subtotal=r[4],
            discount=r[5],
            tax=r[6],
            total=r[7],
            coupon=r[8],
            tax_inclusive=bool(r[9]),
            created_at=from_ms(r[10]),
            cancel_reason=None if r[11] is None else CancelReason(r[11]),
            captured=r[12],
            refunded=r[13],
            review=r[14],
            sequence=r[15],
        )
        for r in rows
    ]
