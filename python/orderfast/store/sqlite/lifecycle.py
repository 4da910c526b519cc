"""Order changes after creation, expiry and the event feed, for SQLite (one thread, one writer)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson

from orderfast.domain.orders import Order
from orderfast.domain.plans import StockMove, TransitionPlan, merged_moves, released_coupons
from orderfast.store.base import FeedEvent, PaymentAlreadyRecorded, PaymentRecord
from orderfast.store.sqlite.codec import to_ms
from orderfast.store.sqlite.orders import get_order


def _apply(conn: sqlite3.Connection, plan: TransitionPlan, *, moves: bool = True) -> Order:
    """Writes ``plan``: nothing is decided here. ``moves=False`` when the caller applies the stock
    moves itself (summed over a batch)."""
    at = to_ms(plan.at)
    order, after = plan.before, plan.after
    if (p := plan.payment) is not None:
        cur = conn.execute(
            "INSERT INTO payment_events (event_id, order_id, status, amount_minor, currency, outcome, http_status, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (p.event_id, p.order_id, p.status, p.amount, p.currency, p.outcome, p.http_status, at),
        )
        if cur.rowcount == 0:
            raise PaymentAlreadyRecorded(p.event_id)
    if moves:  # coupons before products: the lock order create-order uses
        _release_coupons(conn, released_coupons([plan]))
        _move_stock(conn, plan.stock)
    if (e := plan.event) is not None:
        conn.execute(
            "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (e.id, e.aggregate_type, e.aggregate_id, e.sequence, e.type, orjson.dumps(e.envelope).decode(), at),
        )
    if (r := plan.refund) is not None:
        conn.execute(
            "INSERT INTO refunds (id, order_id, amount_minor, created_at) VALUES (?, ?, ?, ?)",
            (r.id, r.order_id, r.amount, at),
        )
    if plan.writes_order:
        conn.execute(
            "UPDATE orders SET status = ?, cancel_reason = ?, captured_minor = ?, refunded_minor = ?, review = ?, "
            "last_sequence = ?, updated_at = ? WHERE id = ?",
            (
                after.status.value,
                None if after.cancel_reason is None else after.cancel_reason.value,
                after.captured,
                after.refunded,
                after.review,
                after.sequence,
                at,
                order.id,
            ),
        )
    return after


def _release_coupons(conn: sqlite3.Connection, released: Iterable[tuple[str, int]]) -> None:
    conn.executemany(
        "UPDATE coupons SET redemptions = max(redemptions - ?, 0) WHERE code = ?", [(n, code) for code, n in released]
    )


def _move_stock(conn: sqlite3.Connection, moves: Iterable[StockMove]) -> None:
    conn.executemany(
        "UPDATE products SET stock = stock + ?, reserved = reserved + ? WHERE sku = ?",
        [(m.stock, m.reserved, m.sku) for m in moves],
    )


def change_order(
    conn: sqlite3.Connection, order_id: str, plan: Callable[[Order], TransitionPlan]
) -> TransitionPlan | None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        order = get_order(conn, order_id)
        if order is None:
            conn.execute("ROLLBACK")
            return None
        planned = plan(order)
        _apply(conn, planned)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return planned


def find_payment(conn: sqlite3.Connection, event_id: str) -> PaymentRecord | None:
    row = conn.execute(
        "SELECT event_id, order_id, status, amount_minor, currency, outcome, http_status FROM payment_events "
        "WHERE event_id = ?",
        (event_id,),
    ).fetchone()
    return None if row is None else PaymentRecord(*row)


def expire_orders(
    conn: sqlite3.Connection, created_before: datetime, limit: int, plan: Callable[[Order], TransitionPlan]
) -> list[Order]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM orders WHERE status = 'PENDING_PAYMENT' AND created_at < ? ORDER BY created_at LIMIT ?",
                (to_ms(created_before), limit),
            )
        ]
        plans = [plan(order) for oid in ids if (order := get_order(conn, oid)) is not None]
        _release_coupons(conn, released_coupons(plans))
        _move_stock(conn, merged_moves(plans))
        expired = [_apply(conn, p, moves=False) for p in plans]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return expired


def events_after(conn: sqlite3.Connection, position: int, limit: int) -> list[FeedEvent]:
    # One writer at a time: positions are assigned and committed in the same order, so the
    # autoincrement position is already a commit-ordered feed position.
    rows = conn.execute(
        "SELECT position, envelope FROM outbox WHERE position > ? ORDER BY position LIMIT ?", (position, limit)
    )
    return [FeedEvent(pos, _loads(env)) for pos, env in rows]


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(text)
    return value
