"""The outbox relay: claim a batch, publish it, mark it — at least once, in order per order.

Several relays may run at once: claims use ``FOR UPDATE SKIP LOCKED`` and a short lease, and only
the earliest unpublished event of each order is ever claimable, so one order's events are never
reordered (a dead event holds its order's later events back until an operator replays it). A relay
renews its lease every third of it while a batch is publishing, so a slow broker never costs it the
batch, while a killed relay's batch is claimable again at most one lease after its last renewal.
Failures are retried with exponential backoff and full jitter; after ``max_attempts`` an event
is dead (``orderfast outbox dead`` / ``orderfast outbox replay ID``).

Traced, each batch is a span of its own trace (``outbox.relay``: the XADDs and the marking), and
each event a PRODUCER span (``publish order.created``) in the trace of the request that made it —
the child of the context its envelope's ``trace`` stores — linked to the batch and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from orderfast.observability import instruments as metrics
from orderfast.observability import tracing
from orderfast.outbox.publisher import BrokerUnavailable, Publisher
from orderfast.resilience.breaker import Breaker
from orderfast.store.base import OutboxMessage, OutboxStore

log = logging.getLogger("orderfast.relay")


@dataclass(frozen=True, slots=True)
class RelaySettings:
    batch: int = 100
    lease_seconds: float = 5.0  # ORDERFAST_RELAY_LEASE
    max_attempts: int = 10
    base_delay: float = 0.5
    max_delay: float = 300.0
    poll_interval: float = 1.0


# During a broker outage the relay retries at most this far apart: the backlog starts draining within
# about this long of the broker's return.
OUTAGE_MAX_DELAY = 2.0


def backoff(attempts: int, s: RelaySettings, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(max_delay, base_delay · 2^attempts)]."""
    return rng() * min(s.max_delay, s.base_delay * 2.0 ** min(attempts, 30))


class Relay:
    def __init__(
        self,
        store: OutboxStore,
        publisher: Publisher,
        settings: RelaySettings | None = None,
        *,
        rng: Callable[[], float] = random.random,
        breaker: Breaker | None = None,
    ) -> None:
        """``breaker``: exports the broker's state (``redis-publish``): open through an outage,
        half-open while a retry is out; the relay's own outage delay spaces the retries."""
        self._store = store
        self._publisher = publisher
        self._s = settings or RelaySettings()
        self._rng = rng
        self.wake = asyncio.Event()
        self._stop: asyncio.Event | None = None
        self.outage_tries = 0  # consecutive batches the broker did not take
        self.breaker = breaker or Breaker("redis-publish", failures=1)
        metrics.RELAY_DEAD_LETTERED.labels()  # exported from the start, at 0: a rate() needs the series

    def stop(self) -> None:
        """Asks ``run_forever`` to return once the batch in hand is published and marked (an idle
        relay returns at once)."""
        if self._stop is not None:
            self._stop.set()
        self.wake.set()

    async def run_once(self) -> int:
        """One batch; returns how many events were claimed."""
        messages = await self._store.claim_outbox(self._s.batch, self._s.lease_seconds)
        if not messages:
            return 0
        if tracing.ENABLED:
            with tracing.span("outbox.relay", {"messaging.batch.message_count": len(messages)}):
                await self._relay(messages)
        else:
            await self._relay(messages)
        return len(messages)

    async def _relay(self, messages: list[OutboxMessage]) -> None:
        """Publishes a claimed batch and marks it."""
        started = time.perf_counter()
        try:
            results = await self._publish_holding(messages)
        except asyncio.CancelledError:
            # Stopped mid-batch: give the claims back now (the next relay republishes them — at
            # least once) rather than leaving them leased until the lease runs out.
            await asyncio.shield(self._store.release_outbox([m.position for m in messages]))
            raise
        except BrokerUnavailable as e:  # the whole batch: the broker is away
            results = [e] * len(messages)
        except Exception as e:  # the whole batch failed otherwise
            results = [e] * len(messages)
        metrics.RELAY_PUBLISH_DURATION.observe(time.perf_counter() - started)
        published = [(m.position, r) for m, r in zip(messages, results, strict=True) if isinstance(r, str)]
        waiting = [m.position for m, r in zip(messages, results, strict=True) if isinstance(r, BrokerUnavailable)]
        failed = [
            (m, r)
            for m, r in zip(messages, results, strict=True)
            if isinstance(r, Exception) and not isinstance(r, BrokerUnavailable)
        ]
        self._note_broker(available=not waiting, published=bool(published))
        if waiting:
            # Not the events' fault: they go back as they were (no attempt counted), to be sent
            # once the broker answers again.
            await self._store.release_outbox(waiting)
        metrics.RELAY_PUBLISHED.inc(len(published))
        metrics.RELAY_FAILURES.inc(len(failed))
        # Marked only after the broker acknowledged: a crash before this line republishes them.
        if published:
            await self._store.mark_published(published)
        if failed:
            log.warning("publishing %d events failed: %s", len(failed), failed[0][1])
            await self._store.mark_failed(
                [(m.position, f"{type(e).__name__}: {e}") for m, e in failed],
                self._s.max_attempts,
                [backoff(m.attempts, self._s, self._rng) for m, _ in failed],
            )
            for m, error in failed:
                if m.attempts + 1 >= self._s.max_attempts:  # what mark_failed has just made dead
                    metrics.RELAY_DEAD_LETTERED.inc()
                    log.error(
                        "event %s is dead after %d attempts (`orderfast outbox replay %s` queues it again)",
                        m.event_id,
                        m.attempts + 1,
                        m.event_id,
                        extra={
                            "fields": {
                                "event_id": m.event_id,
                                "aggregate_id": m.aggregate_id,
                                "error": type(error).__name__,
                            }
                        },
                    )

    async def _publish_holding(self, messages: list[OutboxMessage]) -> list[str | Exception]:
        """Publishes the batch while renewing its lease every third of the lease; the renewals have
        stopped when this returns, so none can re-lease what the caller then releases or marks."""
        done = asyncio.Event()
        heartbeat = asyncio.create_task(self._renew_until(done, [m.position for m in messages]))
        try:
            if tracing.ENABLED:
                return await self._publish_traced(messages)
            return await self._publisher.publish(messages)
        finally:
            done.set()
            await asyncio.shield(heartbeat)

    async def _renew_until(self, done: asyncio.Event, positions: list[int]) -> None:
        lease = self._s.lease_seconds
        while not done.is_set():
            try:
                await asyncio.wait_for(done.wait(), timeout=lease / 3)
            except TimeoutError:
                try:
                    await self._store.renew_outbox(positions, lease)
                except Exception:  # the next beat tries again; past the lease, another relay may publish them too
                    log.warning("could not renew the lease of %d events being published", len(positions), exc_info=True)

    def _note_broker(self, *, available: bool, published: bool) -> None:
        """Tracks a broker outage: said once when it starts and once when it ends; while it lasts
        the relay waits ``outage_delay`` between tries (capped low, so a backlog drains within
        seconds of the broker's return)."""
        if not available:
            self.breaker.failure()
            if self.outage_tries == 0:
                log.warning("the broker is unavailable: events wait (none is dead-lettered) until it answers")
            self.outage_tries += 1
        elif published:
            self.breaker.success()
            if self.outage_tries:
                log.info("the broker answers again after %d tries: publishing the backlog", self.outage_tries)
                self.outage_tries = 0

    @property
    def outage_delay(self) -> float:
        return min(OUTAGE_MAX_DELAY, self._s.base_delay * 2.0 ** min(self.outage_tries, 10)) * (0.5 + self._rng() / 2)

    async def _publish_traced(self, messages: list[OutboxMessage]) -> list[str | Exception]:
        spans = [
            tracing.producer(
                f"publish {m.event_type}",
                _trace(m.envelope),
                {
                    "messaging.system": "redis",
                    "messaging.operation.type": "send",
                    "orderfast.event.id": m.event_id,
                    "orderfast.event.type": m.event_type,
                    "orderfast.aggregate_id": m.aggregate_id,
                },
            )
            for m in messages
        ]
        try:
            results = await self._publisher.publish(messages)
        except BaseException as e:
            for span in spans:
                tracing.end(span, e)
            raise
        for span, result in zip(spans, results, strict=True):
            if isinstance(result, Exception):
                tracing.end(span, result)
            else:
                tracing.end(span, attributes={"messaging.message.id": result})
        return results

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Batches until ``stop`` is set; the batch in hand is finished first (see ``stop``)."""
        stop = stop or asyncio.Event()
        self._stop = stop
        while not stop.is_set():
            try:
                claimed = await self.run_once()
            except Exception:
                log.exception("relay batch failed; retrying")
                claimed = 0
            if claimed == self._s.batch and not self.outage_tries:
                continue  # more is waiting: no pause
            if stop.is_set():
                break
            if self.outage_tries:  # new events do not hurry a retry while the broker is away
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.outage_delay)
                self.breaker.probe()
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self._s.poll_interval)


async def lag_seconds(store: OutboxStore, now: datetime | None = None) -> float:
    """Relay lag: the age of the oldest event not yet published (0 when none waits)."""
    stats = await store.outbox_stats()
    if stats.oldest_pending_at is None:
        return 0.0
    return max(0.0, ((now or datetime.now(UTC)) - stats.oldest_pending_at).total_seconds())


async def dead_count(store: OutboxStore) -> int:
    return (await store.outbox_stats()).dead


GAUGE_INTERVAL = 5.0


async def outbox_gauges_forever(store: OutboxStore, interval: float = GAUGE_INTERVAL) -> None:
    """Relay lag, pending and dead events as gauges, read from the outbox every few seconds (one
    small query; every process that runs this sees the same values, merged by max)."""
    while True:
        try:
            stats = await store.outbox_stats()
            metrics.OUTBOX_PENDING.set(stats.pending)
            metrics.OUTBOX_DEAD.set(stats.dead)
            age = 0.0
            if stats.oldest_pending_at is not None:
                age = max(0.0, (datetime.now(UTC) - stats.oldest_pending_at).total_seconds())
            metrics.OUTBOX_OLDEST_AGE.set(age)
        except Exception:  # the database is away: the gauges keep their last values
            log.debug("outbox gauges not refreshed", exc_info=True)
        await asyncio.sleep(interval)


def _trace(envelope: str) -> Any:
    """The trace context an envelope stores (``trace``), if any."""
    if '"trace"' not in envelope:
        return None
    try:
        trace = orjson.loads(envelope).get("trace")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return trace if isinstance(trace, dict) else None
