"""Order changes after creation, expiry and the commit-ordered event feed, for PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from orderfast.domain.orders import Order
from orderfast.domain.plans import StockMove, TransitionPlan, merged_moves, released_coupons
from orderfast.store.base import FeedEvent, PaymentAlreadyRecorded, PaymentRecord
from orderfast.store.postgres.orders import LIFECYCLE_COLUMNS, ORDER_COLUMNS, orders_from_rows

FEED_LOCK = 0x6F66_0003

_LOCK_ORDER = f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders WHERE id = $1 FOR UPDATE"


async def _apply(conn: asyncpg.Connection, plan: TransitionPlan, *, moves: bool = True) -> Order:
    """Writes ``plan``: nothing is decided here. ``moves=False`` when the caller applies the stock
    moves itself (summed over a batch)."""
    at = plan.at
    order, after = plan.before, plan.after
    if (p := plan.payment) is not None:
        inserted = await conn.fetchval(
            "INSERT INTO payment_events (event_id, order_id, status, amount_minor, currency, outcome, http_status, "
            "received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING true",
            p.event_id,
            p.order_id,
            p.status,
            p.amount,
            p.currency,
            p.outcome,
            p.http_status,
            at,
        )
        if not inserted:
            raise PaymentAlreadyRecorded(p.event_id)
    if moves:  # coupons before products: the lock order create-order uses
        await _release_coupons(conn, released_coupons([plan]))
        await _move_stock(conn, plan.stock)
    if (e := plan.event) is not None:
        await conn.execute(
            "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, sequence, event_type, envelope, occurred_at) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
            e.id,
            e.aggregate_type,
            e.aggregate_id,
            e.sequence,
            e.type,
            orjson.dumps(e.envelope).decode(),
            at,
        )
    if (r := plan.refund) is not None:
        await conn.execute(
            "INSERT INTO refunds (id, order_id, amount_minor, created_at) VALUES ($1, $2, $3, $4)",
            r.id,
            r.order_id,
            r.amount,
            at,
        )
    if plan.writes_order:
        await conn.execute(
            "UPDATE orders SET status = $2, cancel_reason = $3, captured_minor = $4, refunded_minor = $5, "
            "review = $6, last_sequence = $7, updated_at = $8 WHERE id = $1",
            order.id,
            after.status.value,
            None if after.cancel_reason is None else after.cancel_reason.value,
            after.captured,
            after.refunded,
            after.review,
            after.sequence,
            at,
        )
    return after


async def _release_coupons(conn: asyncpg.Connection, released: Iterable[tuple[str, int]]) -> None:
    args = list(released)
    if args:
        await conn.executemany("UPDATE coupons SET redemptions = greatest(redemptions - $2, 0) WHERE code = $1", args)


async def _move_stock(conn: asyncpg.Connection, moves: Iterable[StockMove]) -> None:
    args = [(m.sku, m.stock, m.reserved) for m in moves]
    if args:
        await conn.executemany("UPDATE products SET stock = stock + $2, reserved = reserved + $3 WHERE sku = $1", args)


async def change_order(
    conn: asyncpg.Connection, order_id: str, plan: Callable[[Order], TransitionPlan]
) -> TransitionPlan | None:
    async with conn.transaction():
        rows = await conn.fetch(_LOCK_ORDER, order_id)
        if not rows:
            return None
        (order,) = await orders_from_rows(conn, rows)
        planned = plan(order)
        await _apply(conn, planned)
        return planned


async def find_payment(conn: asyncpg.Connection, event_id: str) -> PaymentRecord | None:
    row = await conn.fetchrow(
        "SELECT event_id, order_id::text, status, amount_minor, currency, outcome, http_status FROM payment_events "
        "WHERE event_id = $1",
        event_id,
    )
    return None if row is None else PaymentRecord(*row)


async def expire_orders(
    conn: asyncpg.Connection, created_before: datetime, limit: int, plan: Callable[[Order], TransitionPlan]
) -> list[Order]:
    async with conn.transaction():
        # SKIP LOCKED: several sweepers share the work; an order being paid right now is left alone.
        rows = await conn.fetch(
            f"SELECT {ORDER_COLUMNS}, {LIFECYCLE_COLUMNS} FROM orders WHERE status = 'PENDING_PAYMENT' "
            "AND created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            created_before,
            limit,
        )
        plans = [plan(o) for o in await orders_from_rows(conn, rows)]
        # The whole batch's coupons, then stock, each row once in code/SKU order: the lock order of
        # create-order, so no deadlock with a concurrent change.
        await _release_coupons(conn, released_coupons(plans))
        await _move_stock(conn, merged_moves(plans))
        return [await _apply(conn, p, moves=False) for p in plans]


async def sequence_feed(conn: asyncpg.Connection, limit: int = 5000) -> int:
    """Gives feed positions to outbox rows whose inserting transaction has ended, in outbox order.

    The classic hole: outbox positions are taken at insert, but transactions commit in another
    order, so a reader paging by position could pass a row whose transaction commits later. Here
    a row is only sequenced once every transaction that started before the oldest one still in
    flight has ended (``txid < xmin`` of a fresh snapshot): no row can appear later below that
    horizon, so feed positions are handed out in an order no late commit can undercut.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", FEED_LOCK)
        status = await conn.execute(
            """
            WITH ready AS (
                SELECT position FROM outbox
                WHERE feed_seq IS NULL AND txid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY position LIMIT $1
            ), base AS (SELECT coalesce(max(feed_seq), 0) AS top FROM outbox)
            UPDATE outbox o SET feed_seq = base.top + r.n
            FROM (SELECT position, row_number() OVER (ORDER BY position) AS n FROM ready) r, base
            WHERE o.position = r.position
            """,
            limit,
        )
    return int(status.split()[-1])


async def events_after(conn: asyncpg.Connection, position: int, limit: int) -> list[FeedEvent]:
    await sequence_feed(conn)
    rows = await conn.fetch(
        "SELECT feed_seq, envelope::text FROM outbox WHERE feed_seq > $1 ORDER BY feed_seq LIMIT $2", position, limit
    )
    return [FeedEvent(r[0], _loads(r[1])) for r in rows]


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(text)
    return value
