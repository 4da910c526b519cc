"""The relay's side of the outbox, for SQLite (one writer: claims cannot race)."""

from __future__ import annotations

import sqlite3

from orderfast.domain.orders import utc_now_ms
from orderfast.store.base import DeadEvent, OutboxMessage, OutboxStats
from orderfast.store.sqlite.codec import from_ms, opt_from_ms, to_ms


def _now() -> int:
    return to_ms(utc_now_ms())


def claim(conn: sqlite3.Connection, limit: int, lease_seconds: float) -> list[OutboxMessage]:
    now = _now()
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            """
            SELECT o.position, o.event_id, o.aggregate_type, o.aggregate_id, o.sequence, o.event_type, o.envelope,
                   o.attempts
            FROM outbox o
            WHERE o.published_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= ?
              AND (o.lease_until IS NULL OR o.lease_until < ?)
              AND NOT EXISTS (
                  SELECT 1 FROM outbox p
                  WHERE p.aggregate_id = o.aggregate_id AND p.position < o.position AND p.published_at IS NULL)
            ORDER BY o.position LIMIT ?
            """,
            (now, now, limit),
        ).fetchall()
        conn.executemany(
            "UPDATE outbox SET lease_until = ? WHERE position = ?",
            [(now + int(lease_seconds * 1000), r[0]) for r in rows],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return [OutboxMessage(*r) for r in rows]


def _write(conn: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def mark_published(conn: sqlite3.Connection, published: list[tuple[int, str]]) -> None:
    now = _now()
    _write(
        conn,
        "UPDATE outbox SET published_at = ?, lease_until = NULL, published_ref = ? WHERE position = ?",
        [(now, ref, pos) for pos, ref in published],
    )


def mark_failed(
    conn: sqlite3.Connection, failed: list[tuple[int, str]], max_attempts: int, delays: list[float]
) -> None:
    now = _now()
    _write(
        conn,
        "UPDATE outbox SET attempts = attempts + 1, lease_until = NULL, last_error = ?, next_attempt_at = ?, "
        "dead_at = CASE WHEN attempts + 1 >= ? THEN ? END WHERE position = ?",
        [
            (err[:2000], now + int(d * 1000), max_attempts, now, pos)
            for (pos, err), d in zip(failed, delays, strict=True)
        ],
    )


def dead_events(conn: sqlite3.Connection, limit: int) -> list[DeadEvent]:
    rows = conn.execute(
        "SELECT position, event_id, event_type, aggregate_id, sequence, attempts, last_error, dead_at FROM outbox "
        "WHERE dead_at IS NOT NULL ORDER BY position LIMIT ?",
        (limit,),
    ).fetchall()
    return [DeadEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], from_ms(r[7])) for r in rows]


def replay_dead(conn: sqlite3.Connection, event_id: str) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = ?, lease_until = NULL "
            "WHERE event_id = ? AND dead_at IS NOT NULL",
            (_now(), event_id),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cur.rowcount == 1


def stats(conn: sqlite3.Connection) -> OutboxStats:
    pending, oldest, dead = conn.execute(
        "SELECT sum(dead_at IS NULL), min(CASE WHEN dead_at IS NULL THEN occurred_at END), sum(dead_at IS NOT NULL) "
        "FROM outbox WHERE published_at IS NULL"
    ).fetchone()
    return OutboxStats(pending or 0, opt_from_ms(oldest), dead or 0)


_LAST = 2**63 - 1  # above every position


def published_refs(conn: sqlite3.Connection, limit: int, before: int | None) -> list[tuple[int, str]]:
    rows = conn.execute(
        "SELECT position, published_ref FROM outbox WHERE published_ref IS NOT NULL AND position < ? "
        "ORDER BY position DESC LIMIT ?",
        (_LAST if before is None else before, limit),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def published_count(conn: sqlite3.Connection) -> int:
    (count,) = conn.execute("SELECT count(*) FROM outbox WHERE published_ref IS NOT NULL").fetchone()
    return int(count)


def renew(conn: sqlite3.Connection, positions: list[int], lease_seconds: float) -> None:
    # Only rows still leased and unpublished: a renewal never re-leases what was released or marked.
    until = _now() + int(lease_seconds * 1000)
    _write(
        conn,
        "UPDATE outbox SET lease_until = ? "
        "WHERE position = ? AND lease_until IS NOT NULL AND published_at IS NULL AND dead_at IS NULL",
        [(until, p) for p in positions],
    )


def release(conn: sqlite3.Connection, positions: list[int]) -> None:
    _write(
        conn,
        "UPDATE outbox SET lease_until = NULL WHERE position = ? AND published_at IS NULL",
        [(p,) for p in positions],
    )


def unpublish(conn: sqlite3.Connection, positions: list[int]) -> None:
    _write(
        conn,
        "UPDATE outbox SET published_at = NULL, published_ref = NULL, next_attempt_at = ? WHERE position = ?",
        [(_now(), p) for p in positions],
    )
