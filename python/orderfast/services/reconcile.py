"""Reconciliation: compare what must agree, report every discrepancy, optionally repair the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from orderfast.store.base import Discrepancy, Store


class BrokerView(Protocol):
    """What reconciliation reads from the broker (the Redis Streams publisher is one)."""

    async def oldest_ref(self, aggregate_type: str) -> str | None: ...

    async def stream_has(self, aggregate_type: str, refs: Sequence[str]) -> list[bool]: ...


def _stream_id(ref: str) -> tuple[int, int]:
    ms, _, seq = ref.partition("-")
    return int(ms), int(seq or 0)


async def reconcile(
    store: Store, publisher: BrokerView | None = None, *, republish: bool = False, recent: int = 10_000
) -> list[Discrepancy]:
    """Database checks always; with a publisher, also the last ``recent`` published events against
    the stream: an acknowledged entry the broker no longer has (and did not trim) was lost, and with
    ``republish`` it is queued for the relay again."""
    found = await store.reconcile()
    if publisher is None:
        return found
    oldest = await publisher.oldest_ref("order")
    refs = await store.published_refs(recent)
    if oldest is not None:
        refs = [(pos, ref) for pos, ref in refs if _stream_id(ref) >= _stream_id(oldest)]
    present = await publisher.stream_has("order", [ref for _, ref in refs]) if refs else []
    lost = [pos for (pos, _), ok in zip(refs, present, strict=True) if not ok]
    found += [Discrepancy("lost_in_broker", str(pos), "published, but not in the stream") for pos in lost]
    if lost and republish:
        await store.unpublish(lost)
    return found
