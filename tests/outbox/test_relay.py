"""The relay against real stores and a real Redis: publish, retry, dead-letter, order per order."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

import orjson
import pytest
import redis.asyncio as aioredis

from orderfast.domain import lifecycle
from orderfast.domain.orders import CancelReason
from orderfast.observability import instruments
from orderfast.observability.logging import JsonFormatter
from orderfast.outbox.publisher import BrokerUnavailable, RedisStreamsPublisher
from orderfast.outbox.relay import Relay, RelaySettings, backoff, dead_count, lag_seconds
from orderfast.resilience.breaker import CLOSED, HALF_OPEN, OPEN
from orderfast.store.base import Change, OutboxMessage, Store
from orderfast.store.postgres import PostgresStore
from orderfast.store.postgres import outbox as pg_outbox
from tests.conftest import planned
from tests.store.test_contract import new_order, put

pytestmark = pytest.mark.anyio
RELAY_LOGGER = "orderfast.relay"


async def stream(redis_url: str, pub: RedisStreamsPublisher) -> list[dict[str, str]]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await client.xrange(f"{pub._prefix}order")
    finally:
        await client.aclose()
    return [fields for _, fields in entries]


async def orders_with_events(store: Store, n: int) -> list[str]:
    await put(store, "SKU-A", stock=10_000)
    ids = []
    for _ in range(n):
        new = new_order()
        await store.create_orders([new])
        await store.change_order(
            new.order.id, planned(lambda o: Change(transition=lifecycle.cancel(o, CancelReason.ADMIN)))
        )
        ids.append(new.order.id)
    return ids


async def test_publishes_every_event_once_with_the_whole_envelope(
    store: Store, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    ids = await orders_with_events(store, 3)
    relay = Relay(store, publisher, RelaySettings(batch=2))
    while await relay.run_once():
        pass
    entries = await stream(redis_url, publisher)
    assert sorted((e["aggregate_id"], e["sequence"]) for e in entries) == sorted(
        (i, s) for i in ids for s in ("1", "2")
    )
    envelope = orjson.loads(entries[0]["envelope"])
    assert set(envelope) == {"id", "type", "aggregate_id", "sequence", "occurred_at", "version", "data"}
    assert (await store.outbox_stats()).pending == 0
    assert await lag_seconds(store) == 0.0
    assert await relay.run_once() == 0, "nothing is published twice"


class BrokenPublisher:
    def __init__(self) -> None:
        self.calls = 0

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
        self.calls += 1
        return [ConnectionError("broker down") for _ in messages]

    async def close(self) -> None: ...


async def test_failures_back_off_then_dead_letter_then_replay(
    store: Store, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    (order_id,) = await orders_with_events(store, 1)
    broken = BrokenPublisher()
    relay = Relay(store, broken, RelaySettings(max_attempts=3, base_delay=0, max_delay=0))
    said: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = said.append  # type: ignore[method-assign]
    logging.getLogger(RELAY_LOGGER).addHandler(handler)
    dead_lettered = instruments.RELAY_DEAD_LETTERED.labels()
    counted = dead_lettered.value
    try:
        for tries in range(1, 4):
            assert await relay.run_once() == 1, "only the order's first event is claimable"
            assert dead_lettered.value - counted == (1 if tries == 3 else 0), "counted when it goes dead"
    finally:
        logging.getLogger(RELAY_LOGGER).removeHandler(handler)
    (dead_line,) = said  # the third failure, and only it, makes the event dead: said once
    assert "is dead after 3 attempts" in dead_line.getMessage()
    assert await relay.run_once() == 0
    assert await dead_count(store) == 1
    (dead,) = await store.dead_events(10)
    assert (dead.aggregate_id, dead.sequence, dead.attempts) == (order_id, 1, 3)
    line = orjson.loads(JsonFormatter().format(dead_line))  # as every command logs it: one JSON object
    assert (line["level"], line["event_id"], line["aggregate_id"]) == ("error", dead.event_id, order_id)
    assert "broker down" in (dead.last_error or "")
    stats = await store.outbox_stats()
    assert stats.pending == 1 and stats.oldest_pending_at is not None, "its second event waits behind it"
    assert await lag_seconds(store) > 0
    assert await store.replay_dead(dead.event_id)
    assert not await store.replay_dead(dead.event_id)
    good = Relay(store, publisher)
    while await good.run_once():
        pass
    assert [(e["aggregate_id"], e["sequence"]) for e in await stream(redis_url, publisher)] == [
        (order_id, "1"),
        (order_id, "2"),
    ]


def test_full_jitter_backoff_is_bounded() -> None:
    s = RelaySettings(base_delay=0.5, max_delay=60)
    assert backoff(0, s, lambda: 1.0) == 0.5
    assert backoff(3, s, lambda: 1.0) == 4.0
    assert backoff(50, s, lambda: 1.0) == 60
    assert backoff(5, s, lambda: 0.0) == 0.0


async def test_two_relays_never_reorder_one_orders_events(
    store: Store, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    await put(store, "SKU-A", stock=10_000)
    ids = []
    for _ in range(10):
        new = new_order()
        await store.create_orders([new])
        ids.append(new.order.id)
    # Each order: created, paid, refunded twice → 4 events that must stay in sequence.
    for oid in ids:
        await store.change_order(oid, planned(lambda o: Change(transition=lifecycle.pay(o, o.total, o.currency))))
        await store.change_order(oid, planned(lambda o: Change(transition=lifecycle.refund(o, 1))))
        await store.change_order(oid, planned(lambda o: Change(transition=lifecycle.refund(o, None))))
    relays = [Relay(store, publisher, RelaySettings(batch=3)) for _ in range(2)]

    async def drain(relay: Relay) -> None:
        idle = 0
        while idle < 3:
            idle = 0 if await relay.run_once() else idle + 1
            await asyncio.sleep(0)

    await asyncio.gather(*(drain(r) for r in relays))
    entries = await stream(redis_url, publisher)
    for oid in ids:
        assert [e["sequence"] for e in entries if e["aggregate_id"] == oid] == ["1", "2", "3", "4"]


class StuckPublisher:
    """A broker that never answers: the relay is stopped while it waits."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
        self.waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("never answers")

    async def close(self) -> None: ...


async def test_a_relay_stopped_mid_batch_releases_its_claims_at_once(
    store: Store, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    ids = await orders_with_events(store, 2)
    stuck = StuckPublisher()
    lease = RelaySettings(lease_seconds=3600)  # a lease no test waits out
    task = asyncio.create_task(Relay(store, stuck, lease).run_once())
    await stuck.waiting.wait()
    assert await store.claim_outbox(10, 60) == [], "the stuck relay holds the claims"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The next relay publishes them now, not an hour later.
    good = Relay(store, publisher, lease)
    while await good.run_once():
        pass
    published = {e["aggregate_id"] for e in await stream(redis_url, publisher)}
    assert published == set(ids)


async def test_stop_finishes_the_batch_in_hand_then_returns(
    store: Store, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    ids = await orders_with_events(store, 3)
    published = asyncio.Event()

    class Signalling:
        async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
            refs = await publisher.publish(messages)
            published.set()
            return refs

        async def close(self) -> None: ...

    relay = Relay(store, Signalling(), RelaySettings(batch=100, poll_interval=3600))
    task = asyncio.create_task(relay.run_forever())
    await published.wait()  # its first batch: the first events of the three orders
    relay.stop()
    await asyncio.wait_for(task, timeout=5)  # returns at once, not after the hour-long poll
    assert {e["aggregate_id"] for e in await stream(redis_url, publisher)} == set(ids)


class FlakyBroker:
    """A broker that is away for its first ``down`` batches, then takes everything."""

    def __init__(self, publisher: RedisStreamsPublisher, down: int) -> None:
        self.publisher = publisher
        self.down = down

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
        if self.down:
            self.down -= 1
            raise BrokerUnavailable("connection refused")
        return await self.publisher.publish(messages)

    async def close(self) -> None: ...


async def test_a_broker_outage_dead_letters_nothing_and_the_backlog_goes_out_when_it_returns(
    store: Store, publisher: RedisStreamsPublisher, redis_url: str
) -> None:
    ids = await orders_with_events(store, 2)
    # Far more failed tries than max_attempts: an outage is not the events' fault.
    relay = Relay(store, FlakyBroker(publisher, down=5), RelaySettings(max_attempts=2, lease_seconds=3600))
    for tries in range(1, 6):
        assert await relay.run_once() == 2, "the events are released at once, not left leased"
        assert relay.outage_tries == tries
        assert relay.breaker.state == OPEN, "the publishing breaker shows the outage"
        relay.breaker.probe()  # as run_forever does before each retry
        assert relay.breaker.state == HALF_OPEN
    assert await dead_count(store) == 0 and (await store.outbox_stats()).pending == 4
    assert 0 < relay.outage_delay <= 2.0, "retries stay close together: the backlog drains soon after"
    while await relay.run_once():
        pass
    assert relay.outage_tries == 0, "the outage is over once the broker takes a batch"
    assert relay.breaker.state == CLOSED
    published = [(e["aggregate_id"], e["sequence"]) for e in await stream(redis_url, publisher)]
    assert sorted(published) == sorted((i, s) for i in ids for s in ("1", "2"))


async def test_an_unreachable_redis_is_an_outage_not_a_poison_event(store: Store) -> None:
    await orders_with_events(store, 1)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        unused_port = s.getsockname()[1]
    away = RedisStreamsPublisher.from_url(f"redis://127.0.0.1:{unused_port}/0", maxlen=1000, prefix="away:")
    try:
        relay = Relay(store, away, RelaySettings(max_attempts=1))
        assert await relay.run_once() == 1
    finally:
        await away.close()
    assert relay.outage_tries == 1 and await dead_count(store) == 0
    (claimed,) = await store.claim_outbox(10, 60)
    assert claimed.attempts == 0, "no attempt was counted against the event"


async def test_the_outbox_gauges_cost_the_same_whatever_the_backlog(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past EXACT_PENDING the pending count is the span of unpublished positions (an upper bound)
    rather than a count of the whole backlog; below it, exact. The oldest pending event is the first
    by position; dead events are counted from their own small index."""
    monkeypatch.setattr(pg_outbox, "EXACT_PENDING", 5)
    await orders_with_events(pg_store, 4)  # 8 events, positions in a row
    stats = await pg_store.outbox_stats()
    assert stats.pending == 8 and stats.dead == 0, "the span: nothing published inside it"
    claimed = await pg_store.claim_outbox(100, 60)
    first = min(claimed, key=lambda m: m.position)
    inside = [m for m in claimed if m.position != first.position][:2]
    await pg_store.mark_published([(m.position, f"0-{m.position}") for m in inside])
    await pg_store.release_outbox([m.position for m in claimed if m not in inside])
    stats = await pg_store.outbox_stats()
    assert stats.pending == 8, "published inside the span still count: an upper bound past the exact limit"
    monkeypatch.setattr(pg_outbox, "EXACT_PENDING", 100)
    stats = await pg_store.outbox_stats()
    assert stats.pending == 6, "exact below the limit"
    occurred = await pg_store.pool.fetchval("SELECT occurred_at FROM outbox WHERE position = $1", first.position)
    assert stats.oldest_pending_at == occurred, "the first unpublished by position"
    await pg_store.mark_failed([(first.position, "refused")], 1, [0.0])  # one attempt allowed: dead
    stats = await pg_store.outbox_stats()
    assert (stats.dead, stats.pending) == (1, 5), "a dead event is counted as dead, not pending"
