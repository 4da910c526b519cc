"""Reconcile notices events the broker lost and queues them for the relay again."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.outbox.relay import Relay
from orderfast.services.reconcile import reconcile
from orderfast.store.base import Store
from tests.outbox.test_relay import orders_with_events, stream

pytestmark = pytest.mark.anyio


async def test_lost_entries_are_found_and_republished(
    store: Store,
    publisher: RedisStreamsPublisher,
    redis_url: str,
) -> None:
    await orders_with_events(store, 3)
    relay = Relay(store, publisher)
    while await relay.run_once():
        pass
    assert await reconcile(store, publisher) == []
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    entries = await client.xrange(f"{publisher._prefix}order")
    lost_ref, lost_fields = entries[-2]
    await client.xdel(f"{publisher._prefix}order", lost_ref)  # as if Redis crashed before fsync
    await client.aclose()
    found = await reconcile(store, publisher, republish=True)
    assert [d.kind for d in found] == ["lost_in_broker"]
    while await relay.run_once():
        pass
    assert lost_fields["event_id"] in [e["event_id"] for e in await stream(redis_url, publisher)]
    assert await reconcile(store, publisher) == []
