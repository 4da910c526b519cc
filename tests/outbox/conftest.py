"""Relay fixtures: a Redis Streams publisher on a stream prefix of its own, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from orderfast.outbox.publisher import RedisStreamsPublisher


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[RedisStreamsPublisher]:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    pub = RedisStreamsPublisher.from_url(redis_url, maxlen=100_000, prefix=prefix)
    try:
        yield pub
    finally:
        client = aioredis.Redis.from_url(redis_url)
        await client.delete(f"{prefix}order")
        await client.aclose()
        await pub.close()
