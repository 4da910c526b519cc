"""Group commit: concurrent create-orders of one worker share a transaction, and its commit.

A commit with ``synchronous_commit=on`` waits for a WAL flush; under load that wait, not the SQL,
bounds how many orders a connection can commit. Requests that arrive while ``inflight`` batches are
already being written queue up and go together in the next one (at most ``max_batch``), so the batch
size follows the load with no added delay: an idle server writes each order at once, a busy one
amortises a flush over many. Every caller is answered only after its batch has committed, so an
acknowledged order is as durable as one written alone.

A batch that raises (as opposed to refusing single orders, which the batch handles itself) is
retried order by order, so that one bad order fails only its own request.

Each caller waits until its request's deadline (resilience/deadline.py); what happens then is in
``_wait``. A batch that fails because the database is away fails all its orders at once.

Traced, each caller's wait is a span (``order.batch_wait``), and each batch one more
(``order.batch_write``: the transaction and what it sends to the database), the child of its first
sampled caller's wait, linked to the other sampled waits — and each of those linked back to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from orderfast.observability import instruments as m
from orderfast.observability import tracing
from orderfast.resilience import deadline
from orderfast.store.base import StoreUnavailable

log = logging.getLogger("orderfast.store")

In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommit(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[list[Out]]],
        *,
        max_batch: int = 64,
        inflight: int = 2,
        system: str | None = None,
    ) -> None:
        """``system``: the database, as traces name it (``db.system.name``)."""
        if max_batch < 1 or inflight < 1:
            raise ValueError("max_batch and inflight must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._inflight_limit = inflight
        self._inflight = 0
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._traced: dict[asyncio.Future[Out], Any] = {}  # a traced caller's wait span, by its future
        self._system = system
        m.DEPENDENCY_TIMEOUTS.labels(system or "store", "batch_wait")  # exported from the start, at 0
        self.batches = 0  # counters, for tests and metrics
        self.items = 0

    async def submit(self, items: Sequence[In]) -> list[Out]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        futures = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures, strict=True))
        if tracing.ENABLED:
            return await self._traced_wait(futures, started)
        self._start()
        # A caller that goes away cancels only its own wait: its order stays in the batch that may
        # already be committing (or in the queue), and the outcome is simply not delivered.
        when = deadline.deadline()
        outcomes = [await f for f in futures] if when is None else await self._wait(futures, when)
        m.BATCH_WAIT.observe(time.perf_counter() - started)
        return outcomes

    async def _wait(self, futures: list[asyncio.Future[Out]], when: float) -> list[Out]:
        """Waits for the caller's outcomes until its deadline. Past it, what is still queued is
        taken out — never written, and the caller is told so — and what a batch already carries
        may yet commit: the caller is told the outcome is unknown (its retry with the same key will
        find out)."""
        try:
            async with asyncio.timeout_at(when):
                return [await f for f in futures]
        except TimeoutError:
            mine = {id(f) for f in futures}
            queued = len(self._pending)
            self._pending = [(i, f) for i, f in self._pending if id(f) not in mine]
            sent = queued - len(self._pending) < len(futures)
            for f in futures:
                f.cancel()
            m.DEPENDENCY_TIMEOUTS.labels(self._system or "store", "batch_wait").inc()
            raise StoreUnavailable(
                "timed out waiting for its batch to commit" if sent else "timed out queued for a batch",
                maybe_applied=sent,
            ) from None

    async def _traced_wait(self, futures: list[asyncio.Future[Out]], started: float) -> list[Out]:
        with tracing.span("order.batch_wait"):
            context = tracing.current()
            for f in futures:
                self._traced[f] = context
            self._start()
            outcomes = [await f for f in futures]
        m.BATCH_WAIT.observe(time.perf_counter() - started)
        return outcomes

    def _start(self) -> None:
        while self._pending and self._inflight < self._inflight_limit:
            self._inflight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        """Writes batches while orders are queued. The next batch goes out as soon as the last one
        is answered — in the same task, before its callers run: a new task would wait its turn in
        the event loop behind them (under load, milliseconds in which the database has nothing
        to do)."""
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                await self._write(batch)
        finally:
            self._inflight -= 1
            self._start()  # only if this task was cancelled with orders still queued

    async def _write(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        waits = [self._traced.pop(f, None) for _, f in batch] if self._traced else None
        try:
            self.batches += 1
            self.items += len(batch)
            m.BATCH_SIZE.observe(len(batch))
            try:
                if waits is not None and tracing.ENABLED:
                    outcomes = await self._traced_run([item for item, _ in batch], waits)
                else:
                    outcomes = await self._run([item for item, _ in batch])
            except Exception as e:
                # The database away (or the batch past its budget) fails every order alike: writing
                # them one by one would only knock again, once per order.
                if len(batch) == 1 or isinstance(e, StoreUnavailable):
                    for _, future in batch:
                        _settle(future, error=e)
                    return
                log.warning("a batch of %d orders failed (%s); writing them one by one", len(batch), type(e).__name__)
                await asyncio.gather(*(self._write_alone(item, future) for item, future in batch))
                return
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                _settle(future, result=outcome)
        except BaseException as e:  # cancelled at shutdown: nobody may wait forever
            for _, future in batch:
                _settle(future, error=e if isinstance(e, Exception) else asyncio.CancelledError())
            raise

    async def _traced_run(self, items: list[In], waits: list[Any]) -> list[Out]:
        attributes: dict[str, Any] = {"orderfast.batch.size": len(items)}
        if self._system is not None:
            attributes["db.system.name"] = self._system
        with tracing.batch("order.batch_write", attributes, waits):
            return await self._run(items)

    async def _write_alone(self, item: In, future: asyncio.Future[Out]) -> None:
        try:
            (outcome,) = await self._run([item])
        except Exception as e:
            _settle(future, error=e)
        else:
            _settle(future, result=outcome)


def _settle(future: asyncio.Future[Out], *, result: Out | None = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
