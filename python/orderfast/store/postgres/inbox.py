"""The consumer-side inbox on PostgreSQL: processed event ids, written in the effects' transaction.

A consumer (``outbox.consumer``) makes at-least-once delivery exactly-once in effect by recording
each event id in the same transaction as what the event caused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

Effects = Callable[[asyncpg.Connection], Awaitable[None]]


class PostgresInbox:
    """Processed event ids per consumer, written in the transaction of the effects."""

    def __init__(self, pool: asyncpg.Pool, consumer: str) -> None:
        self._pool = pool
        self._consumer = consumer

    async def setup(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS consumer_inbox (consumer text NOT NULL, event_id text NOT NULL, "
                "processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer, event_id))"
            )

    async def process_once(self, event_id: str, effects: Effects) -> bool:
        """Runs ``effects`` unless this event was processed before; True when it ran."""
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO consumer_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
                self._consumer,
                event_id,
            )
            if not fresh:
                return False
            await effects(conn)
            return True
