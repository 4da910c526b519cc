"""The order workflow. Deterministic, and importing nothing but Temporal and the standard library:
Temporal's sandbox re-imports this module for every run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

EXPIRE = "expire_order"
SETTLED = ("order.paid", "order.canceled")


@workflow.defn(name="OrderPayment")
class OrderPayment:
    """Reserve (done by the create-order transaction) → wait for the payment until the order's
    deadline → if it never came, compensate: the ``expire_order`` activity cancels the order as
    ``expired`` (stock and coupon back, ``order.canceled``), retried until the store answers. An
    ``order.paid`` or ``order.canceled`` event (the ``settle`` signal) ends the wait early."""

    def __init__(self) -> None:
        self.settled: str | None = None

    @workflow.run
    async def run(self, order_id: str, deadline_unix: float) -> str:
        remaining = datetime.fromtimestamp(deadline_unix, UTC) - workflow.now()
        try:
            await workflow.wait_condition(lambda: self.settled is not None, timeout=max(remaining, timedelta(0)))
        except TimeoutError:
            outcome: str = await workflow.execute_activity(
                EXPIRE,
                order_id,
                start_to_close_timeout=timedelta(seconds=30),
                # The compensation must happen: retried, backing off to a minute, for as long as it takes.
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
            )
            return outcome
        assert self.settled is not None
        return self.settled

    @workflow.signal
    def settle(self, event_type: str) -> None:
        self.settled = event_type
