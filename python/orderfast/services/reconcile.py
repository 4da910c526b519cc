"""Reconciliation: compare what must agree, report every discrepancy, optionally repair the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from orderfast.store.base import Discrepancy, Store

PAGE = 10_000  # published references read, and looked up in the stream, at a time


class StreamState(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def length(self) -> int: ...
    @property
    def first(self) -> str | None:
        """The id of the stream's oldest entry; None when it is empty or absent."""

    @property
    def added(self) -> int | None:
        """Entries ever added to the stream, trimmed ones included; None when the broker cannot say."""


class BrokerView(Protocol):
    """What reconciliation reads from the broker (the Redis Streams publisher is one)."""

    async def stream_state(self, aggregate_type: str) -> StreamState: ...

    async def stream_has(self, aggregate_type: str, refs: Sequence[str]) -> list[bool]: ...


def _stream_id(ref: str) -> tuple[int, int]:
    ms, _, seq = ref.partition("-")
    return int(ms), int(seq or 0)


async def reconcile(
    store: Store, publisher: BrokerView | None = None, *, republish: bool = False, recent: int = 10_000
) -> list[Discrepancy]:
    """Database checks always, and dead events (each one an event no consumer will see until it is
    replayed); with a publisher, also the published events against the stream: an acknowledged
    entry the broker no longer has (and did not trim) was lost, and with ``republish`` it is
    queued for the relay again."""
    found = await store.reconcile()
    found += [
        Discrepancy(
            "dead_event",
            d.event_id,
            f"{d.event_type} of order {d.aggregate_id} (sequence {d.sequence}) is dead after {d.attempts} attempts: "
            f"{(d.last_error or '')[:200]} (`orderfast outbox replay {d.event_id}` queues it again)",
        )
        for d in await store.dead_events(recent)
    ]
    if publisher is None:
        return found
    lost, reset = await _lost_in_broker(store, publisher, recent)
    if reset is not None:
        found.append(reset)
    found += [
        Discrepancy("lost_in_broker", str(pos), f"published as {ref}, but not in the stream") for pos, ref in lost
    ]
    if lost and republish:
        await store.unpublish([pos for pos, _ in lost])
    return found


async def _lost_in_broker(
    store: Store, broker: BrokerView, recent: int
) -> tuple[list[tuple[int, str]], Discrepancy | None]:
    """The published events the order stream lost, and a note when it lost them by being emptied
    or replaced. Read in this order — the outbox, then the stream — so that every reference read
    was published before the stream is looked at."""
    newest = await store.published_refs(recent)
    if not newest:
        return [], None
    published = await store.published_count()
    stream = await broker.stream_state("order")
    first = None if stream.first is None else _stream_id(stream.first)
    if stream.added is None or stream.added >= published:
        # The stream was given at least every event the outbox published: references older than
        # its first entry were trimmed (MAXLEN); the newest must still be there.
        return await _missing(broker, [(p, r) for p, r in newest if first is not None and _stream_id(r) >= first]), None
    # Fewer entries were ever added to this stream than the outbox published to it: it was emptied
    # or replaced (a Redis restarted without its data, a failover to an empty replica) and lost
    # events older than anything it holds — which no lookup by id can tell from trimmed ones. Its
    # own trimming removed its oldest (added - length) entries, so at most that many of the newest
    # references below its first entry were trimmed; every older one was lost. Every published
    # reference is read, so that a republish queues them all.
    lost: list[tuple[int, str]] = []
    below: list[tuple[tuple[int, int], int, str]] = []
    before = newest[0][0] + 1  # nothing published after the stream was looked at
    while page := await store.published_refs(PAGE, before):
        before = page[-1][0]
        held = []
        for pos, ref in page:
            if first is not None and _stream_id(ref) >= first:
                held.append((pos, ref))
            else:
                below.append((_stream_id(ref), pos, ref))
        lost += await _missing(broker, held)
    below.sort(reverse=True)
    lost += [(pos, ref) for _, pos, ref in below[stream.added - stream.length :]]
    if not lost:  # the outbox changed under the count
        return [], None
    reset = Discrepancy(
        "stream_reset",
        stream.name,
        f"the stream was emptied or replaced: it was given {stream.added} entries and holds {stream.length}, "
        f"while {published} events were published to it; {len(lost)} of them are missing",
    )
    return sorted(lost), reset


async def _missing(broker: BrokerView, refs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The (position, reference) pairs whose entry is not in the order stream."""
    missing = []
    for i in range(0, len(refs), PAGE):
        chunk = refs[i : i + PAGE]
        present = await broker.stream_has("order", [ref for _, ref in chunk])
        missing += [pr for pr, ok in zip(chunk, present, strict=True) if not ok]
    return missing
