"""Order changes after creation, expiry and the event feed, for SQLite (one thread, one writer)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from orderfast import _core
from orderfast.domain.events import transition_event
from orderfast.domain.lifecycle import StockEffect, cancel
from orderfast.domain.orders import CancelReason, Order, utc_now_ms
from orderfast.store.base import Change, FeedEvent, PaymentAlreadyRecorded, PaymentRecord
from orderfast.store.sqlite.codec import to_ms
from orderfast.store.sqlite.orders import get_order


def _apply(conn: sqlite3.Connection, order: Order, change: Change) -> Order:
    now = utc_now_ms()
    after = order
    if change.payment is not None:
        p = change.payment
        cur = conn.execute(
            "INSERT INTO payment_events (event_id, order_id, status, amount_minor, currency, outcome, http_status, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (p.event_id, p.order_id, p.status, p.amount, p.currency, p.outcome, p.http_status, to_ms(now)),
        )
        if cur.rowcount == 0:
            raise PaymentAlreadyRecorded(p.event_id)
    if change.transition is not None:
        t = change.transition
        after = t.order
        lines = sorted(order.lines, key=lambda ln: ln.sku)
        if t.stock is StockEffect.RELEASE:
            conn.executemany(
                "UPDATE products SET stock = stock + ?, reserved = reserved - ? WHERE sku = ?",
                [(ln.quantity, ln.quantity, ln.sku) for ln in lines],
            )
        elif t.stock is StockEffect.SELL:
            conn.executemany(
                "UPDATE products SET reserved = reserved - ? WHERE sku = ?", [(ln.quantity, ln.sku) for ln in lines]
            )
        event = transition_event(_core.new_order_id(), t, now)
        conn.execute(
            "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.aggregate_type,
                event.aggregate_id,
                event.sequence,
                event.type,
                orjson.dumps(event.envelope).decode(),
                to_ms(now),
            ),
        )
    if change.review is not None:
        after = replace(after, review=change.review)
    if change.refund is not None:
        conn.execute(
            "INSERT INTO refunds (id, order_id, amount_minor, created_at) VALUES (?, ?, ?, ?)",
            (_core.new_order_id(), order.id, change.refund, to_ms(now)),
        )
    if after is not order:
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
                to_ms(now),
                order.id,
            ),
        )
    return after


def change_order(
    conn: sqlite3.Connection, order_id: str, decide: Callable[[Order], Change]
) -> tuple[Order, Change] | None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        order = get_order(conn, order_id)
        if order is None:
            conn.execute("ROLLBACK")
            return None
        change = decide(order)
        after = _apply(conn, order, change)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return after, change


def find_payment(conn: sqlite3.Connection, event_id: str) -> PaymentRecord | None:
    row = conn.execute(
        "SELECT event_id, order_id, status, amount_minor, currency, outcome, http_status FROM payment_events "
        "WHERE event_id = ?",
        (event_id,),
    ).fetchone()
    return None if row is None else PaymentRecord(*row)


def expire_orders(conn: sqlite3.Connection, created_before: datetime, limit: int) -> list[Order]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM orders WHERE status = 'PENDING_PAYMENT' AND created_at < ? ORDER BY created_at LIMIT ?",
                (to_ms(created_before), limit),
            )
        ]
        expired = []
        for oid in ids:
            order = get_order(conn, oid)
            assert order is not None
            expired.append(_apply(conn, order, Change(transition=cancel(order, CancelReason.EXPIRED))))
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
