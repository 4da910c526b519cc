"""Consumer-side helper: read a Redis Stream with a consumer group, exactly-once effects.

Delivery is at least once (the relay may publish an event twice; a consumer may die between
doing its work and acknowledging it). Effects become exactly once with an **inbox**: the event id
is recorded in the same database transaction as the handler's effects, so a redelivered event
finds its id already there and changes nothing. Entries a dead consumer left pending are
reclaimed with ``XAUTOCLAIM`` after ``reclaim_idle_ms``.

Traced (``orderfast.observability.tracing.start()`` in the consumer's process), handling an event
is a CONSUMER span (``process order.created``) in the trace of the request that made the event —
the child of the context its envelope's ``trace`` stores — so the consumer's queries join it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as redis

from orderfast.observability import tracing
from orderfast.store.postgres.inbox import PostgresInbox

__all__ = ["PostgresInbox", "StreamConsumer"]

log = logging.getLogger("orderfast.consumer")


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
        self.reclaimed = 0  # entries taken over from a consumer that read them and never acknowledged

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
        self.reclaimed += len(entries)
        if not entries:
            response: Any = await self._redis.xreadgroup(
                self._group, self._name, {self._stream: ">"}, count=self._batch, block=self._block_ms
            )
            # RESP2 (redis-py's default): [[stream, [(id, fields), …]]].
            entries = response[0][1] if response else []
        for entry_id, fields in entries:
            envelope = orjson.loads(fields[b"envelope"] if b"envelope" in fields else fields["envelope"])
            if tracing.ENABLED:
                with tracing.consumer(
                    f"process {envelope.get('type')}", envelope.get("trace"), self._attributes(entry_id, envelope)
                ):
                    await self._process(entry_id, envelope)
            else:
                await self._process(entry_id, envelope)
        return len(entries)

    async def _process(self, entry_id: Any, envelope: dict[str, Any]) -> None:
        await self._handle(envelope)
        # Acknowledged only after the effects committed: a crash here means a redelivery,
        # which the inbox turns into a no-op.
        await self._redis.xack(self._stream, self._group, entry_id)

    def _attributes(self, entry_id: Any, envelope: dict[str, Any]) -> dict[str, Any]:
        return {
            "messaging.system": "redis",
            "messaging.operation.type": "process",
            "messaging.destination.name": self._stream,
            "messaging.consumer.group.name": self._group,
            "messaging.message.id": entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
            "orderfast.event.id": str(envelope.get("id")),
            "orderfast.consumer": self._name,
        }
