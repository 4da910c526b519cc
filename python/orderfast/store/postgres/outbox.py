"""The relay's side of the outbox, for PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from orderfast.store.base import DeadEvent, OutboxMessage, OutboxStats

_CLAIM = """
WITH ready AS (
    SELECT o.position FROM outbox o
    WHERE o.published_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= now()
      AND (o.lease_until IS NULL OR o.lease_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM outbox p
          WHERE p.aggregate_id = o.aggregate_id AND p.position < o.position AND p.published_at IS NULL)
    ORDER BY o.position
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET lease_until = now() + $2::interval
FROM ready WHERE o.position = ready.position
RETURNING o.position, o.event_id::text, o.aggregate_type, o.aggregate_id::text, o.sequence, o.event_type,
          o.envelope::text, o.attempts
"""


async def claim(conn: asyncpg.Connection, limit: int, lease_seconds: float) -> list[OutboxMessage]:
    rows = await conn.fetch(_CLAIM, limit, timedelta(seconds=lease_seconds))
    return sorted((OutboxMessage(*r) for r in rows), key=lambda m: m.position)


async def mark_published(conn: asyncpg.Connection, published: list[tuple[int, str]]) -> None:
    await conn.execute(
        "UPDATE outbox o SET published_at = now(), lease_until = NULL, published_ref = p.ref "
        "FROM unnest($1::bigint[], $2::text[]) AS p(position, ref) WHERE o.position = p.position",
        [p for p, _ in published],
        [r for _, r in published],
    )


async def mark_failed(
    conn: asyncpg.Connection, failed: list[tuple[int, str]], max_attempts: int, delays: list[float]
) -> None:
    await conn.execute(
        """
        UPDATE outbox o SET attempts = o.attempts + 1, lease_until = NULL, last_error = f.error,
            next_attempt_at = now() + make_interval(secs => f.delay),
            dead_at = CASE WHEN o.attempts + 1 >= $4 THEN now() END
        FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS f(position, error, delay)
        WHERE o.position = f.position
        """,
        [p for p, _ in failed],
        [e[:2000] for _, e in failed],
        delays,
        max_attempts,
    )


async def dead_events(conn: asyncpg.Connection, limit: int) -> list[DeadEvent]:
    rows = await conn.fetch(
        "SELECT position, event_id::text, event_type, aggregate_id::text, sequence, attempts, last_error, dead_at "
        "FROM outbox WHERE dead_at IS NOT NULL ORDER BY position LIMIT $1",
        limit,
    )
    return [DeadEvent(*r) for r in rows]


async def replay_dead(conn: asyncpg.Connection, event_id: str) -> bool:
    status = await conn.execute(
        "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = now(), lease_until = NULL "
        "WHERE event_id::text = $1 AND dead_at IS NOT NULL",
        event_id,
    )
    return bool(status.endswith(" 1"))


# Pending events are counted exactly up to this many; beyond it the count is the span of positions
# still unpublished (an upper bound: it includes events published out of order inside the span).
EXACT_PENDING = 10_000

# Watching the outbox must not cost more as the backlog grows (a broker outage): every part is bounded
# by a constant, never a count of the whole backlog (that took 120-170 ms at a million pending events,
# every 5 s in every worker; this, ~2 ms). The oldest pending event is the first by position.
_STATS = """
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL AND dead_at IS NULL LIMIT $1) p),
  (SELECT occurred_at FROM outbox WHERE published_at IS NULL AND dead_at IS NULL ORDER BY position LIMIT 1),
  (SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL AND published_at IS NULL),
  (SELECT max(position) - min(position) + 1 FROM outbox WHERE published_at IS NULL)
"""


async def stats(conn: asyncpg.Connection) -> OutboxStats:
    row = await conn.fetchrow(_STATS, EXACT_PENDING + 1)
    assert row is not None
    pending = row[0] if row[0] <= EXACT_PENDING else max(row[0], row[3] - row[2])
    return OutboxStats(pending, row[1], row[2])


_LAST = 2**63 - 1  # above every position


async def published_refs(conn: asyncpg.Connection, limit: int, before: int | None) -> list[tuple[int, str]]:
    rows = await conn.fetch(
        "SELECT position, published_ref FROM outbox WHERE published_ref IS NOT NULL AND position < $2 "
        "ORDER BY position DESC LIMIT $1",
        limit,
        _LAST if before is None else before,
    )
    return [(r[0], r[1]) for r in rows]


async def published_count(conn: asyncpg.Connection) -> int:
    count = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_ref IS NOT NULL")
    return int(count)


async def renew(conn: asyncpg.Connection, positions: list[int], lease_seconds: float) -> None:
    # Only rows still leased and unpublished: a renewal never re-leases what was released or marked.
    await conn.execute(
        "UPDATE outbox SET lease_until = now() + $2::interval "
        "WHERE position = ANY($1::bigint[]) AND lease_until IS NOT NULL AND published_at IS NULL AND dead_at IS NULL",
        positions,
        timedelta(seconds=lease_seconds),
    )


async def release(conn: asyncpg.Connection, positions: list[int]) -> None:
    await conn.execute(
        "UPDATE outbox SET lease_until = NULL WHERE position = ANY($1::bigint[]) AND published_at IS NULL",
        positions,
    )


async def unpublish(conn: asyncpg.Connection, positions: list[int]) -> None:
    await conn.execute(
        "UPDATE outbox SET published_at = NULL, published_ref = NULL, next_attempt_at = now() "
        "WHERE position = ANY($1::bigint[])",
        positions,
    )
