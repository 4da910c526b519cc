"""Plans: everything one order command writes, decided here, applied by a store. No I/O.

Create-order: the service prices the order and builds its event and idempotency record; the
``CreatePlan`` adds what the reservation is (stock moves per SKU, in line order) and the coupon to
redeem. A store applies it checking only the conditions that must hold at the moment of writing —
the key unused, the coupon's room, each move leaving stock at zero or more, in that order — and
answers which one failed.

Order changes: the service decides (a transition of the state machine, a review flag, a payment
record), then ``plan_change`` turns that decision into the complete list of writes: the order row
after it, the stock moves, the event with its id and sequence, the payment and refund rows, the
time. A store applies it in one transaction and decides nothing; the one condition it checks is
that a payment event is recorded only once (its unique id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from orderfast.domain.events import OutboxEvent, transition_event
from orderfast.domain.lifecycle import StockEffect, Transition
from orderfast.domain.orders import Order


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What the store remembers of an acknowledged request, unique on (principal, key)."""

    principal: str
    key: str
    fingerprint: bytes
    status: int
    body: bytes
    order_id: str


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment provider's event as processed, unique on ``event_id``: a redelivery gets the
    same answer and changes nothing."""

    event_id: str
    order_id: str
    status: str
    amount: int
    currency: str
    outcome: str
    http_status: int


@dataclass(frozen=True, slots=True)
class Change:
    """What the service decided for one order: applied with the order row locked."""

    transition: Transition | None = None  # new state, its event, its stock effect
    review: str | None = None  # flag the order for an operator
    payment: PaymentRecord | None = None  # the provider event that caused this change


@dataclass(frozen=True, slots=True)
class StockMove:
    """Added to a product's ``stock`` and ``reserved`` columns."""

    sku: str
    stock: int
    reserved: int


@dataclass(frozen=True, slots=True)
class CreatePlan:
    """Everything one create-order writes: applied whole, or not at all."""

    order: Order
    event: OutboxEvent
    idempotency: IdempotencyRecord
    # The customer's cap on unpaid orders (condition: fewer than this many before this one).
    open_orders_cap: int | None = None
    # The catalog version of the snapshot that priced it (condition: the customer's restrictions,
    # the coupon and the products have not changed since; None: not checked).
    catalog_version: int | None = None

    @property
    def coupon(self) -> str | None:
        """The coupon to redeem once (condition: it has room left)."""
        return self.order.coupon

    @property
    def stock(self) -> tuple[StockMove, ...]:
        """The reservation: each SKU's quantity, summed over the lines, moves from ``stock`` to
        ``reserved`` (condition: stock stays at zero or more), in the order the lines name them —
        so the first short SKU is the one a refusal names, on every store."""
        quantities: dict[str, int] = {}
        for ln in self.order.lines:
            quantities[ln.sku] = quantities.get(ln.sku, 0) + ln.quantity
        return tuple(StockMove(sku, -q, q) for sku, q in quantities.items())


@dataclass(frozen=True, slots=True)
class RefundRecord:
    id: str
    order_id: str
    amount: int  # minor units


@dataclass(frozen=True, slots=True)
class TransitionPlan:
    before: Order
    after: Order  # the row to write; the same object as ``before`` when the row does not change
    at: datetime  # when: the event's occurred_at, the rows' timestamps (milliseconds)
    stock: tuple[StockMove, ...] = ()  # one per SKU, sorted by SKU (the lock order)
    event: OutboxEvent | None = None
    payment: PaymentRecord | None = None
    refund: RefundRecord | None = None
    coupon_release: str | None = None  # a coupon whose redemption the change gives back

    @property
    def writes_order(self) -> bool:
        return self.after is not self.before


def stock_moves(order: Order, effect: StockEffect) -> tuple[StockMove, ...]:
    """What a stock effect does to each of the order's SKUs: a release puts the reservation back
    on the shelf, a sale takes it out of the reservation for good."""
    if effect is StockEffect.NONE:
        return ()
    sold = effect is StockEffect.SELL
    return tuple(
        StockMove(ln.sku, 0 if sold else ln.quantity, -ln.quantity) for ln in sorted(order.lines, key=lambda x: x.sku)
    )


def plan_change(
    order: Order, change: Change, *, at: datetime, new_id: Callable[[], str], trace: dict[str, str] | None = None
) -> TransitionPlan:
    """The writes of ``change`` to ``order``; ``new_id`` gives the event's and the refund's ids,
    ``trace`` the trace context its event stores (see ``events.order_created``)."""
    after = order
    moves: tuple[StockMove, ...] = ()
    event = refund = None
    coupon_release = None
    t = change.transition
    if t is not None:
        after = t.order
        moves = stock_moves(order, t.stock)
        # A cancel gives back all the unpaid order held: its stock and its coupon's redemption.
        if t.stock is StockEffect.RELEASE:
            coupon_release = order.coupon
        event = transition_event(new_id(), t, at, trace)
        if after.refunded > order.refunded:
            refund = RefundRecord(new_id(), order.id, after.refunded - order.refunded)
    if change.review is not None:
        after = replace(after, review=change.review)
    return TransitionPlan(order, after, at, moves, event, change.payment, refund, coupon_release)


def released_coupons(plans: Iterable[TransitionPlan]) -> list[tuple[str, int]]:
    """(code, redemptions given back) for several plans, by code: each coupon row once, in code order."""
    total: dict[str, int] = {}
    for plan in plans:
        if plan.coupon_release is not None:
            total[plan.coupon_release] = total.get(plan.coupon_release, 0) + 1
    return sorted(total.items())


def merged_moves(plans: Iterable[TransitionPlan]) -> list[StockMove]:
    """The stock moves of several plans summed per SKU and sorted by SKU: a batch (expiry) locks
    each product once, in one global order, so it cannot deadlock with a concurrent change."""
    total: dict[str, tuple[int, int]] = {}
    for plan in plans:
        for m in plan.stock:
            stock, reserved = total.get(m.sku, (0, 0))
            total[m.sku] = (stock + m.stock, reserved + m.reserved)
    return [StockMove(sku, stock, reserved) for sku, (stock, reserved) in sorted(total.items())]
