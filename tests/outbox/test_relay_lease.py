"""The relay's lease: renewed while a batch is publishing, so a slow broker never hands the batch to
another relay; renewals never re-lease what was given back or published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.outbox.relay import Relay, RelaySettings
from orderfast.store.base import OutboxMessage, Store
from tests.outbox.test_relay import orders_with_events, stream

pytestmark = pytest.mark.anyio


async def test_a_renewal_extends_only_claims_still_in_hand(store: Store) -> None:
    await orders_with_events(store, 3)
    released, published, held = await store.claim_outbox(10, 3600)
    await store.release_outbox([released.position])
    await store.mark_published([(published.position, "1-1")])
    await store.renew_outbox([released.position, published.position, held.position], 3600)
    claimable = await store.claim_outbox(10, 60)
    assert released.position in {m.position for m in claimable}, "a released event is not leased again"
    assert held.position not in {m.position for m in claimable}, "the held one stays leased"
    assert {m.aggregate_id for m in claimable} == {released.aggregate_id, published.aggregate_id}
    assert [m.sequence for m in claimable if m.aggregate_id == published.aggregate_id] == [2], "its next event"


class GatedPublisher:
    """A broker that takes its time: each batch waits for ``gate``, then goes to Redis."""

    def __init__(self, publisher: RedisStreamsPublisher) -> None:
        self.publisher = publisher
        self.publishing = asyncio.Event()
        self.gate = asyncio.Event()

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
        self.publishing.set()
        await self.gate.wait()
        return await self.publisher.publish(messages)

    async def close(self) -> None: ...


async def test_a_slow_publish_keeps_its_claim_past_the_lease(
    store: Store, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    ids = await orders_with_events(store, 4)
    lease = RelaySettings(lease_seconds=0.5)
    slow = GatedPublisher(publisher)
    holder = asyncio.create_task(Relay(store, slow, lease).run_once())
    await slow.publishing.wait()
    held_since = time.monotonic()
    other = Relay(store, publisher, lease)
    # Three leases long, a second relay finds nothing to claim: the first keeps renewing.
    tries = 0
    while time.monotonic() - held_since < 3 * lease.lease_seconds:
        assert await other.run_once() == 0, "a live relay's batch was taken over"
        tries += 1
        await asyncio.sleep(0.05)
    assert tries > 5
    slow.gate.set()
    assert await holder == 4
    while await other.run_once():
        pass
    published = [(e["aggregate_id"], e["sequence"]) for e in await stream(redis_url, publisher)]
    assert sorted(published) == sorted((i, s) for i in ids for s in ("1", "2")), "each event exactly once"
