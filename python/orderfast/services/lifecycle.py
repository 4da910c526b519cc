"""What happens to an order after it is created: cancellation, payment, refunds, expiry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orderfast import _core
from orderfast.domain import lifecycle
from orderfast.domain.orders import CancelReason, Order, OrderStatus, to_ms
from orderfast.domain.plans import Change, PaymentRecord, TransitionPlan, plan_change
from orderfast.observability import instruments as m
from orderfast.observability import tracing
from orderfast.services.errors import InvalidInputError, InvalidStateError, NotFoundError
from orderfast.services.order_cache import OrderCache, OrderDocument
from orderfast.services.payments import PaymentNotice
from orderfast.store.base import FeedEvent, PaymentAlreadyRecorded, Store

log = logging.getLogger("orderfast.lifecycle")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The webhook's answer: its HTTP status, the order as it is now, and why when not 200."""

    status: int
    order: Order
    outcome: str


class LifecycleService:
    def __init__(
        self,
        store: Store,
        *,
        payment_timeout: float = 900.0,
        clock: Clock = system_clock,
        cache: OrderCache | None = None,
    ) -> None:
        self._store = store
        self._timeout = timedelta(seconds=payment_timeout)
        self._clock = clock
        self._cache = cache

    async def _cached(self, orders: list[Order]) -> None:
        """Changed orders' new documents into the shared cache, once committed (write-through:
        the client that changed an order reads the change at once, from any instance)."""
        if self._cache is not None:
            for order in orders:
                await self._cache.put(order.id, OrderDocument.of(order))

    def _plan(self, decide: Callable[[Order], Change]) -> Callable[[Order], TransitionPlan]:
        """What the store calls with the locked order: the decision, then every write it implies,
        at this service's time and with fresh ids."""

        def plan(order: Order) -> TransitionPlan:
            # The event stores the trace context of the request that changed the order (the sweep has none).
            trace = tracing.carrier() if tracing.ENABLED else None
            return plan_change(order, decide(order), at=to_ms(self._clock()), new_id=_core.new_order_id, trace=trace)

        return plan

    async def _change(self, order_id: str, decide: Callable[[Order], Change]) -> Order:
        try:
            applied = (
                await self._store.change_order(order_id, self._plan(decide)) if _core.is_order_id(order_id) else None
            )
        except lifecycle.InvalidTransition as e:
            raise InvalidStateError(str(e), e.status.value) from None
        if applied is None:
            raise NotFoundError("order")
        _count(applied)
        await self._cached([applied.after])
        return applied.after

    async def cancel(self, order_id: str, user_id: str, is_admin: bool) -> Order:
        """The owner cancels as ``customer``, an admin as ``admin``; anyone else sees no order."""

        def decide(order: Order) -> Change:
            if order.customer_id != user_id and not is_admin:
                raise NotFoundError("order")
            reason = CancelReason.CUSTOMER if order.customer_id == user_id else CancelReason.ADMIN
            return Change(transition=lifecycle.cancel(order, reason))

        return await self._change(order_id, decide)

    async def refund(self, order_id: str, amount_text: str | None) -> Order:
        def decide(order: Order) -> Change:
            amount = None
            if amount_text is not None:
                try:
                    amount = _core.parse_amount(amount_text, order.currency)
                except ValueError as e:
                    raise InvalidInputError([("/amount", "invalid_amount", str(e))]) from None
                if amount == 0:
                    raise InvalidInputError([("/amount", "out_of_range", "must be more than zero")])
            try:
                transition = lifecycle.refund(order, amount)
            except lifecycle.RefundTooLarge as e:
                most = _core.format_amount(e.refundable, order.currency)
                raise InvalidInputError(
                    [("/amount", "refund_too_large", f"at most {most} {order.currency} can be refunded")]
                ) from None
            return Change(transition=transition)

        return await self._change(order_id, decide)

    async def payment(self, notice: PaymentNotice) -> PaymentResult:
        """Applies a provider event once: a redelivery gets the first answer and changes nothing."""
        for _ in range(2):
            seen = await self._store.find_payment(notice.event_id)
            if seen is not None:
                m.PAYMENTS.labels("replayed").inc()
                return await self._replayed(seen)
            try:
                result = await self._apply_payment(notice)
                m.PAYMENTS.labels(_PAYMENT_OUTCOMES.get(result.outcome, "conflict")).inc()
                return result
            except PaymentAlreadyRecorded:
                continue  # a concurrent delivery won: answer as it did
        raise RuntimeError("payment event neither recorded nor applicable")  # pragma: no cover

    async def _replayed(self, seen: PaymentRecord) -> PaymentResult:
        order = await self._store.get_order(seen.order_id)
        if order is None:  # pragma: no cover - payment rows are only written with their order
            raise NotFoundError("order")
        return PaymentResult(seen.http_status, order, seen.outcome)

    async def _apply_payment(self, n: PaymentNotice) -> PaymentResult:
        decided: list[tuple[int, str]] = []

        def decide(order: Order) -> Change:
            status, outcome, change = _payment_change(order, n)
            decided.append((status, outcome))
            record = PaymentRecord(n.event_id, order.id, n.status, _amount(n, order), n.currency, outcome, status)
            return Change(transition=change.transition, review=change.review, payment=record)

        order = await self._change(n.order_id, decide)
        status, outcome = decided[-1]
        if status != 200:
            log.warning("payment event %s for order %s: %s", n.event_id, n.order_id, outcome)
        return PaymentResult(status, order, outcome)

    async def events_after(self, position: int, limit: int) -> list[FeedEvent]:
        """The event feed: committed events after ``position``, in feed order."""
        return await self._store.events_after(position, limit)

    async def expire(self, order_id: str) -> Order | None:
        """One order's payment timer ran out (the Temporal saga's compensation): cancels it as
        ``expired`` — stock and coupon back, ``order.canceled`` — if it is still unpaid; None, with
        nothing written, when it was settled meanwhile (paid, canceled) or is not due yet."""

        def decide(order: Order) -> Change:
            if order.status is not OrderStatus.PENDING_PAYMENT or order.created_at > self._clock() - self._timeout:
                raise _NotDue
            return _expire(order)

        try:
            return await self._change(order_id, decide)
        except _NotDue:
            return None

    async def sweep(self, batch: int = 100) -> int:
        """Cancels every unpaid order older than the payment timeout; returns how many."""
        cutoff = self._clock() - self._timeout
        total = 0
        while True:
            expired = await self._store.expire_orders(cutoff, batch, self._plan(_expire))
            m.ORDERS_CANCELED.labels(CancelReason.EXPIRED.value).inc(len(expired))
            await self._cached(expired)
            total += len(expired)
            if len(expired) < batch:
                return total

    async def sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if n := await self.sweep():
                    log.info("expired %d unpaid orders", n)
            except Exception:
                log.exception("expiry sweep failed; retrying next interval")


class _NotDue(Exception):
    """The order is settled, or its payment time is not over: nothing to expire."""


def _expire(order: Order) -> Change:
    return Change(transition=lifecycle.cancel(order, CancelReason.EXPIRED))


def _amount(n: PaymentNotice, order: Order) -> int:
    """The notice's amount in minor units of its currency (-1 when it is not a valid amount)."""
    try:
        return _core.parse_amount(n.amount_text, n.currency)
    except ValueError:
        return -1


def _payment_change(order: Order, n: PaymentNotice) -> tuple[int, str, Change]:
    matches = n.currency == order.currency and _amount(n, order) == order.total
    pending = order.status is OrderStatus.PENDING_PAYMENT
    if n.status == "succeeded":
        if pending and matches:
            return 200, "paid", Change(transition=lifecycle.pay(order, order.total, order.currency))
        if pending:
            return 422, "amount_mismatch", Change(review="payment amount or currency mismatch")
        return 409, f"paid_while_{order.status.value}", Change(review=f"payment succeeded while {order.status.value}")
    if pending:
        return 200, "failed", Change(transition=lifecycle.cancel(order, CancelReason.PAYMENT_FAILED))
    return 409, f"failed_while_{order.status.value}", Change()


# A payment's outcome as the metric counts it; "paid_while_…"/"failed_while_…" (a late or
# conflicting notice, flagged for review) are "conflict".
_PAYMENT_OUTCOMES = {"paid": "paid", "failed": "failed", "amount_mismatch": "mismatch"}


def _count(plan: TransitionPlan) -> None:
    """The business counters of a change that happened (observability/instruments.py)."""
    if plan.event is None:
        return
    if plan.event.type == "order.canceled" and plan.after.cancel_reason is not None:
        m.ORDERS_CANCELED.labels(plan.after.cancel_reason.value).inc()
    elif plan.event.type == "order.refunded" and plan.refund is not None:
        m.REFUNDS.labels(plan.after.currency).inc()
        m.REFUNDED_VALUE.labels(plan.after.currency).inc(plan.refund.amount)
