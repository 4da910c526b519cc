"""``orderfast worker temporal``: the Temporal worker of the order workflows (saga/workflows.py) and
their starter, in one process.

The starter reads the order events from the outbox's Redis stream (consumer group ``temporal``):
``order.created`` starts the order's workflow (id ``order-payment-<order id>``: a redelivered event
starts nothing twice), ``order.paid`` / ``order.canceled`` signal it to finish. An entry is
acknowledged only after Temporal has taken it. The activity ``expire_order`` runs the same
lifecycle decision as the sweeper (LifecycleService.expire), so the outcomes — state, stock,
events — are the sweeper's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from orderfast import bootstrap
from orderfast.config import ConfigError, Settings
from orderfast.outbox.consumer import StreamConsumer
from orderfast.outbox.publisher import stream_for
from orderfast.saga.workflows import EXPIRE, SETTLED, OrderPayment
from orderfast.services.lifecycle import LifecycleService

log = logging.getLogger("orderfast.saga")


def workflow_id(order_id: str) -> str:
    return f"order-payment-{order_id}"


class Starter:
    """Turns order events into workflow starts and signals."""

    def __init__(self, client: Client, task_queue: str, payment_timeout: float) -> None:
        self._client = client
        self._queue = task_queue
        self._timeout = payment_timeout

    async def handle(self, envelope: dict[str, Any]) -> None:
        kind, order_id = envelope.get("type"), str(envelope.get("aggregate_id"))
        if kind == "order.created":
            created = datetime.fromisoformat(str(envelope["data"]["created_at"]).replace("Z", "+00:00"))
            # A redelivery after the workflow finished starts nothing again.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await self._client.start_workflow(
                    OrderPayment.run,
                    args=[order_id, created.timestamp() + self._timeout],
                    id=workflow_id(order_id),
                    task_queue=self._queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
        elif kind in SETTLED:
            try:
                await self._client.get_workflow_handle(workflow_id(order_id)).signal(OrderPayment.settle, kind)
            except RPCError as e:
                if e.status != RPCStatusCode.NOT_FOUND:
                    raise
                # Finished already (its timer ran out, or the event came twice): nothing to tell it.


def expire_activity(lifecycle: LifecycleService) -> Any:
    @activity.defn(name=EXPIRE)
    async def expire_order(order_id: str) -> str:
        order = await lifecycle.expire(order_id)
        return "expired" if order is not None else "settled"

    return expire_order


async def run(settings: Settings) -> None:
    if settings.temporal_address is None:
        raise ConfigError("orderfast worker temporal needs ORDERFAST_TEMPORAL_ADDRESS")
    if settings.redis_url is None:
        raise ConfigError("orderfast worker temporal reads the order events: set ORDERFAST_REDIS_URL")
    import redis.asyncio as aioredis

    parts = bootstrap.build(settings)
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    redis_client = aioredis.Redis.from_url(settings.redis_url.reveal())
    starter = Starter(client, settings.temporal_task_queue, settings.payment_timeout)
    # One consumer name per process, so replicas share the group's entries; what a stopped one read
    # and never acknowledged is taken over by another after the consumer's reclaim time.
    name = f"temporal-{socket.gethostname()}-{os.getpid()}"
    consumer = StreamConsumer(
        redis_client, stream_for("order", settings.stream_prefix), "temporal", name, starter.handle
    )
    await parts.store.open()
    await consumer.ensure_group()
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[OrderPayment],
        activities=[expire_activity(parts.lifecycle)],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def consume() -> None:
        while not stop.is_set():
            try:
                await consumer.run_once()
            except Exception:
                log.exception("order events: reading or starting failed; retrying")
                await asyncio.sleep(1)

    log.info("Temporal worker on %s, task queue %s", settings.temporal_address, settings.temporal_task_queue)
    running = asyncio.create_task(worker.run())
    consuming = asyncio.create_task(consume())
    try:
        await stop.wait()
    finally:
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming
        await worker.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await redis_client.aclose()
        await parts.store.close()
