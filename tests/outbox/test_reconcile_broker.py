"""Reconcile notices events the broker lost — one entry, or the whole stream of a Redis restarted
empty — and dead events, and queues lost events for the relay again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.outbox.relay import Relay, RelaySettings
from orderfast.services.reconcile import reconcile
from orderfast.store.base import Discrepancy, OutboxMessage, Store
from tests.outbox.redis_server import RedisServer
from tests.outbox.test_relay import orders_with_events, stream

pytestmark = pytest.mark.anyio


async def publish_all(store: Store, publisher: RedisStreamsPublisher) -> None:
    relay = Relay(store, publisher)
    while await relay.run_once():
        pass


async def test_lost_entries_are_found_and_republished(
    store: Store,
    publisher: RedisStreamsPublisher,
    redis_url: str,
) -> None:
    await orders_with_events(store, 3)
    await publish_all(store, publisher)
    assert await reconcile(store, publisher) == []
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    entries = await client.xrange(f"{publisher._prefix}order")
    lost_ref, lost_fields = entries[-2]
    await client.xdel(f"{publisher._prefix}order", lost_ref)  # as if Redis crashed before fsync
    await client.aclose()
    found = await reconcile(store, publisher, republish=True)
    assert [d.kind for d in found] == ["lost_in_broker"]
    await publish_all(store, publisher)
    assert lost_fields["event_id"] in [e["event_id"] for e in await stream(redis_url, publisher)]
    assert await reconcile(store, publisher) == []


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    # Small stream nodes, so that MAXLEN ~ trims a few dozen entries, not hundreds.
    server = RedisServer(tmp_path, "--stream-node-max-entries", "5").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def own_publisher(own_redis: RedisServer) -> AsyncIterator[RedisStreamsPublisher]:
    pub = RedisStreamsPublisher.from_url(own_redis.url, maxlen=100_000, prefix="own:")
    try:
        yield pub
    finally:
        await pub.close()


async def reconciled(store: Store, redis: RedisServer, *, republish: bool = False) -> list[Discrepancy]:
    """Reconciled as ``orderfast reconcile`` does it: with a publisher of its own (a new connection)."""
    pub = RedisStreamsPublisher.from_url(redis.url, maxlen=100_000, prefix="own:")
    try:
        return await reconcile(store, pub, republish=republish)
    finally:
        await pub.close()


async def test_a_stream_restarted_empty_is_found_and_every_lost_event_republished(
    store: Store, own_redis: RedisServer, own_publisher: RedisStreamsPublisher
) -> None:
    await orders_with_events(store, 5)
    await publish_all(store, own_publisher)
    before = {e["event_id"] for e in await stream(own_redis.url, own_publisher)}
    assert len(before) == 10 and await reconciled(store, own_redis) == []
    lost = {str(pos) for pos, _ in await store.published_refs(100)}

    own_redis.restart_empty()
    found = await reconciled(store, own_redis)
    assert [(d.kind, d.subject) for d in found if d.kind != "lost_in_broker"] == [("stream_reset", "own:order")]
    assert {d.subject for d in found if d.kind == "lost_in_broker"} == lost, "the stream is gone: all lost"

    # The relay publishes new events: the new stream's first entry is newer than every lost one,
    # which must not pass for trimmed.
    await orders_with_events(store, 3)
    await publish_all(store, own_publisher)
    found = await reconciled(store, own_redis, republish=True)
    assert [d.kind for d in found].count("stream_reset") == 1
    reset = next(d for d in found if d.kind == "stream_reset")
    assert "given 6 entries and holds 6, while 16 events were published to it; 10 of them are missing" in reset.detail
    assert {d.subject for d in found if d.kind == "lost_in_broker"} == lost

    await publish_all(store, own_publisher)
    after = [e["event_id"] for e in await stream(own_redis.url, own_publisher)]
    assert len(after) == 16 and before <= set(after), "every lost event is in the stream again, once"
    assert await reconciled(store, own_redis) == []


async def test_trimmed_entries_are_not_lost(store: Store, own_redis: RedisServer) -> None:
    pub = RedisStreamsPublisher.from_url(own_redis.url, maxlen=10, prefix="trim:")
    try:
        await orders_with_events(store, 20)
        await publish_all(store, pub)
        held = await stream(own_redis.url, pub)
        assert 10 <= len(held) < 40, "MAXLEN ~ trimmed the oldest entries"
        assert await reconcile(store, pub) == []
        # Trimmed, then one lost among those it holds: that one alone is found.
        client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
        entries = await client.xrange("trim:order")
        ref = entries[len(entries) // 2][0]
        await client.xdel("trim:order", ref)
        await client.aclose()
        (found,) = await reconcile(store, pub)
        assert (found.kind, found.detail) == ("lost_in_broker", f"published as {ref}, but not in the stream")
    finally:
        await pub.close()


class RefusingBroker:
    async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
        return [ValueError("entry refused") for _ in messages]

    async def close(self) -> None: ...


async def test_dead_events_are_discrepancies(store: Store, publisher: RedisStreamsPublisher) -> None:
    await orders_with_events(store, 2)
    assert await Relay(store, RefusingBroker(), RelaySettings(batch=1, max_attempts=1)).run_once() == 1
    (dead,) = await store.dead_events(10)
    await publish_all(store, publisher)  # the other order's events
    (found,) = await reconcile(store, publisher, republish=True)
    assert (found.kind, found.subject) == ("dead_event", dead.event_id)
    assert "entry refused" in found.detail and f"orderfast outbox replay {dead.event_id}" in found.detail
    assert await store.dead_events(10) == [dead], "republishing does not replay a dead event"
    assert await store.replay_dead(dead.event_id)
    await publish_all(store, publisher)
    assert await reconcile(store, publisher) == []
