"""An example consumer: per-customer order statistics, exactly once, from the order stream.

    ORDERFAST_DATABASE_URL=postgresql://… ORDERFAST_REDIS_URL=redis://… \\
        python -m orderfast.outbox.example_consumer

Keeps ``order_stats`` (orders created, paid, canceled, refunded amount per customer) in
PostgreSQL; each event's update and its inbox row commit together.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import asyncpg
import redis.asyncio as redis

from orderfast.config import Settings
from orderfast.outbox.consumer import PostgresInbox, StreamConsumer
from orderfast.outbox.publisher import stream_for

CONSUMER = "order-stats"
COLUMN = {"order.created": "created", "order.paid": "paid", "order.canceled": "canceled"}


async def setup(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS order_stats (customer_id text PRIMARY KEY, created int NOT NULL DEFAULT 0, "
            "paid int NOT NULL DEFAULT 0, canceled int NOT NULL DEFAULT 0, refunded_minor bigint NOT NULL DEFAULT 0)"
        )


def handler(inbox: PostgresInbox) -> Any:
    async def handle(envelope: dict[str, Any]) -> None:
        data = envelope["data"]
        customer = data["customer_id"]
        column = COLUMN.get(envelope["type"])

        async def effects(conn: asyncpg.Connection) -> None:
            await conn.execute("INSERT INTO order_stats (customer_id) VALUES ($1) ON CONFLICT DO NOTHING", customer)
            if column is not None:
                await conn.execute(f"UPDATE order_stats SET {column} = {column} + 1 WHERE customer_id = $1", customer)
            elif envelope["type"] == "order.refunded":
                await conn.execute(
                    "UPDATE order_stats SET refunded_minor = refunded_minor + $2 WHERE customer_id = $1",
                    customer,
                    int(data["change"]["amount"]),
                )

        await inbox.process_once(envelope["id"], effects)

    return handle


async def build(
    pool: asyncpg.Pool,
    client: redis.Redis,
    *,
    prefix: str,
    name: str | None = None,
    reclaim_idle_ms: int = 30_000,
) -> StreamConsumer:
    await setup(pool)
    inbox = PostgresInbox(pool, CONSUMER)
    await inbox.setup()
    consumer = StreamConsumer(
        client,
        stream_for("order", prefix),
        CONSUMER,
        name or f"{socket.gethostname()}-{os.getpid()}",
        handler(inbox),
        reclaim_idle_ms=reclaim_idle_ms,
    )
    await consumer.ensure_group()
    return consumer


async def main() -> None:
    settings = Settings.from_env()
    if settings.database_url is None or settings.redis_url is None:
        raise SystemExit("the example consumer needs ORDERFAST_DATABASE_URL and ORDERFAST_REDIS_URL")
    pool = await asyncpg.create_pool(settings.database_url.reveal(), min_size=1, max_size=4)
    client = redis.Redis.from_url(settings.redis_url.reveal())
    consumer = await build(pool, client, prefix=settings.stream_prefix)
    try:
        while True:
            await consumer.run_once()
    finally:
        await client.aclose()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
