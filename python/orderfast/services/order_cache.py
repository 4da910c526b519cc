"""A shared cache of order documents in Redis, in front of ``GET /v1/orders/{id}`` (optional:
``ORDERFAST_READ_CACHE``).

An entry is an order's rendered document with the two things a read needs besides it: the owner
(someone else's order stays a 404) and the sequence (the ETag). Entries only move forward: one
script sets an entry only when the cache holds none or an older sequence, so a read that loaded an
order before a change can never put the older document back over the newer one. Every change to an
order — cancel, payment, refund, expiry: each is an event — writes its new document through once it
has committed, so the client that changed it reads the change at once, from any instance. Entries
live ``ttl`` seconds, each ±10 % (so entries filled together do not expire together); that bounds
how long anything the cache could not be told (a change while Redis was unreachable) stays.

Unreachable Redis is never an error: reads go to the database (a circuit breaker keeps a dead Redis
from costing each read a timeout), writes of entries are skipped.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orderfast.domain.orders import Order, order_json
from orderfast.observability import instruments as m
from orderfast.resilience.breaker import Breaker

if TYPE_CHECKING:
    import redis.asyncio as redis

log = logging.getLogger("orderfast.cache")

# KEYS[1] the entry; ARGV: sequence, the entry, its lifetime in ms. An entry starts "<sequence> ".
_SET_IF_NEWER = """
local held = redis.call('GET', KEYS[1])
if held then
  local sequence = tonumber(string.match(held, '^(%d+) '))
  if sequence and sequence >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class OrderDocument:
    """An order as a read answers it: its owner, its sequence and its document's bytes."""

    customer_id: str
    sequence: int
    body: bytes

    @classmethod
    def of(cls, order: Order) -> OrderDocument:
        return cls(order.customer_id, order.sequence, order_json(order))

    def encode(self) -> bytes:
        owner = self.customer_id.encode()
        return b"%d %d\n" % (self.sequence, len(owner)) + owner + self.body

    @classmethod
    def decode(cls, raw: bytes) -> OrderDocument | None:
        head, sep, rest = raw.partition(b"\n")
        sequence, _, length = head.partition(b" ")
        if not sep or not sequence.isdigit() or not length.isdigit() or len(rest) < int(length):
            return None
        n = int(length)
        return cls(rest[:n].decode(), int(sequence), rest[n:])


class OrderCache:
    def __init__(
        self, client: redis.Redis, *, ttl: float, prefix: str = "orderfast:order:", breaker: Breaker | None = None
    ) -> None:
        import redis.asyncio as redis

        self._redis = client
        self._errors = (redis.RedisError, OSError)
        self._script = client.register_script(_SET_IF_NEWER)
        self._ttl_ms = ttl * 1000
        self._prefix = prefix
        self.breaker = breaker or Breaker("redis-cache")

    async def get(self, order_id: str) -> OrderDocument | None:
        """The cached document, or None (not cached, or Redis unreachable)."""
        if not self.breaker.allow():
            m.READ_CACHE.labels("error").inc()
            return None
        try:
            raw = await self._redis.get(self._prefix + order_id)
        except self._errors as e:
            self._failed(e)
            return None
        self.breaker.success()
        document = None if raw is None else OrderDocument.decode(raw if isinstance(raw, bytes) else raw.encode())
        m.READ_CACHE.labels("miss" if document is None else "hit").inc()
        return document

    async def put(self, order_id: str, document: OrderDocument) -> bool:
        """Caches ``document`` unless a newer one is cached; False when it was not (older, or Redis
        unreachable)."""
        if not self.breaker.allow():
            return False
        lifetime = round(self._ttl_ms * random.uniform(0.9, 1.1))
        try:
            stored = await self._script(
                keys=[self._prefix + order_id], args=[document.sequence, document.encode(), lifetime]
            )
        except self._errors as e:
            self._failed(e)
            return False
        self.breaker.success()
        return bool(stored)

    def _failed(self, e: Exception) -> None:
        m.READ_CACHE.labels("error").inc()
        self.breaker.failure()
        log.debug("order cache: Redis call failed: %s", e)

    async def close(self) -> None:
        await self._redis.aclose()
