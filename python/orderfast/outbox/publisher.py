"""Publishers: where the relay sends events. A small interface so Kafka or NATS can be added
without touching the relay; Redis Streams is the first.

The Redis client is imported only when a Redis publisher is made: importing it costs ~130 ms (it
brings parts of OpenTelemetry's SDK), and a server without ``ORDERFAST_REDIS_URL`` never needs it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from orderfast.store.base import OutboxMessage

if TYPE_CHECKING:
    import redis.asyncio as redis


class BrokerUnavailable(Exception):
    """The broker could not be reached (or the connection died): no fault of the event. A publisher
    raises it for a whole batch, or returns it for the messages it could not send; the relay puts
    those back unharmed — an outage never counts toward dead-lettering."""


def _unavailable() -> tuple[type[BaseException], ...]:
    """What "the broker is away" looks like from redis-py: the connection, not the command, failed."""
    import redis.asyncio as redis

    return (redis.ConnectionError, redis.TimeoutError, OSError)


class Publisher(Protocol):
    async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
        """Publishes each message; per message, the broker's reference once it acknowledged the
        message, or the error that kept it from doing so."""

    async def close(self) -> None: ...


def stream_for(aggregate_type: str, prefix: str) -> str:
    return f"{prefix}{aggregate_type}"


@dataclass(frozen=True, slots=True)
class StreamState:
    """What reconciliation reads of a stream."""

    name: str
    length: int
    first: str | None  # the id of its oldest entry (None: empty)
    added: int | None  # entries ever added to it, trimmed ones included (None: a Redis before 7 does not say)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStreamsPublisher:
    """``XADD`` to one stream per aggregate type (``orderfast:events:order``), each entry carrying
    the whole envelope. Streams are trimmed approximately to ``maxlen`` entries: consumers must
    keep up within that window.

    At-least-once holds only as far as Redis keeps what it acknowledged: with AOF
    ``appendfsync everysec`` up to about a second of acknowledged entries can be lost in a crash
    (``always`` closes that gap at a throughput cost); ``orderfast reconcile --republish`` finds
    published events the stream no longer has and queues them again.
    """

    def __init__(self, client: redis.Redis, *, maxlen: int, prefix: str) -> None:
        import redis.asyncio as redis

        self._redis = client
        self._maxlen = maxlen
        self._prefix = prefix
        self._unavailable = _unavailable()
        self._response_error = redis.ResponseError

    @classmethod
    def from_url(cls, url: str, *, maxlen: int, prefix: str, timeout: float | None = 5.0) -> RedisStreamsPublisher:
        """``timeout``: seconds to connect and for each reply — a partitioned or frozen Redis is
        then an outage the relay rides out (``BrokerUnavailable``), not a relay stuck forever."""
        import redis.asyncio as redis

        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        return cls(client, maxlen=maxlen, prefix=prefix)

    async def publish(self, messages: Sequence[OutboxMessage]) -> list[str | Exception]:
        if not messages:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for m in messages:
                pipe.xadd(
                    stream_for(m.aggregate_type, self._prefix),
                    {
                        "event_id": m.event_id,
                        "type": m.event_type,
                        "aggregate_id": m.aggregate_id,
                        "sequence": str(m.sequence),
                        "envelope": m.envelope,
                    },
                    maxlen=self._maxlen,
                    approximate=True,
                )
            try:
                results = await pipe.execute(raise_on_error=False)
            except self._unavailable as e:
                raise BrokerUnavailable(f"{type(e).__name__}: {e}") from e
        return [
            BrokerUnavailable(str(r))
            if isinstance(r, self._unavailable)
            else r
            if isinstance(r, Exception)
            else (r.decode() if isinstance(r, bytes) else str(r))
            for r in results
        ]

    async def stream_has(self, aggregate_type: str, refs: Sequence[str]) -> list[bool]:
        """Whether each entry id is still in the stream (reconcile's check for lost entries)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for ref in refs:
                pipe.xrange(stream_for(aggregate_type, self._prefix), min=ref, max=ref, count=1)
            found = await pipe.execute()
        return [bool(f) for f in found]

    async def stream_state(self, aggregate_type: str) -> StreamState:
        """The stream's length, oldest entry and how many entries it was ever given (``XINFO
        STREAM``); an absent stream is empty and was given none."""
        name = stream_for(aggregate_type, self._prefix)
        try:
            info = await self._redis.xinfo_stream(name)
        except self._response_error as e:
            if "no such key" not in str(e).lower():
                raise
            return StreamState(name, 0, None, 0)
        first = info.get("first-entry")
        added = info.get("entries-added")  # Redis 7 and later
        return StreamState(
            name, int(info["length"]), _text(first[0]) if first else None, None if added is None else int(added)
        )

    async def close(self) -> None:
        await self._redis.aclose()
