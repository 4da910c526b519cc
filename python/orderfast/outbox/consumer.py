"""Consumer-side helper: read a Redis Stream with a consumer group, exactly-once effects.

Delivery is at least once (the relay may publish an event twice; a consumer may die between
doing its work and acknowledging it). Effects become exactly once with an **inbox**: the event id
is recorded in the same database transaction as the handler's effects, so a redelivered event
finds its id already there and changes nothing. Entries a dead consumer left pending are
reclaimed with ``XAUTOCLAIM`` after ``reclaim_idle_ms``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import redis.asyncio as redis

log = logging.getLogger("orderfast.consumer")

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


class StreamConsumer:
    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        name: str,
        handle: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        batch: int = 50,
        block_ms: int = 1000,
        reclaim_idle_ms: int = 30_000,
    ) -> None:
        self._redis = client
        self._stream = stream
        self._group = group
        self._name = name
        self._handle = handle
        self._batch = batch
        self._block_ms = block_ms
        self._reclaim_idle_ms = reclaim_idle_ms

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def run_once(self) -> int:
        """Handles one batch (reclaimed stale entries first, else new ones); returns how many."""
        _, entries, *_ = await self._redis.xautoclaim(
            self._stream,
            self._group,
            self._name,
            min_idle_time=self._reclaim_idle_ms,
            start_id="0-0",
            count=self._batch,
        )
        if not entries:
            response: Any = await self._redis.xreadgroup(
                self._group, self._name, {self._stream: ">"}, count=self._batch, block=self._block_ms
            )
            # RESP2 (redis-py's default): [[stream, [(id, fields), …]]].
            entries = response[0][1] if response else []
        for entry_id, fields in entries:
            envelope = orjson.loads(fields[b"envelope"] if b"envelope" in fields else fields["envelope"])
            await self._handle(envelope)
            # Acknowledged only after the effects committed: a crash here means a redelivery,
            # which the inbox turns into a no-op.
            await self._redis.xack(self._stream, self._group, entry_id)
        return len(entries)
