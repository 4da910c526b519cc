"""The one Store contract every backend implements, and the values that cross it.

Creating orders takes a *batch* and returns one outcome per order, so that concurrent creates can
later share one transaction (group commit) without changing any caller. Each order's outcome is
independent: one order's failure never fails another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from orderfast.domain.catalog import (
    CatalogChanges,
    Coupon,
    CouponSpec,
    Product,
    ProductSpec,
    Promotion,
    PromotionSpec,
)
from orderfast.domain.customers import Restrictions, RestrictionsSpec
from orderfast.domain.orders import Order
from orderfast.domain.plans import Change, CreatePlan, IdempotencyRecord, PaymentRecord, TransitionPlan

# the plans' vocabulary, re-exported
__all__ = ["Change", "CreatePlan", "IdempotencyRecord", "PaymentRecord", "TransitionPlan"]


class StoreError(Exception):
    """The store cannot do its work (unreachable, misconfigured, schema out of date)."""


class SchemaOutOfDate(StoreError):
    pass


class ConstraintViolation(StoreError):
    """A write would break a rule the database guards (e.g. max_redemptions below redemptions)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is going away (network, pool or statement timeout, a
    server shutting down, a file it cannot write, an open circuit breaker): not a bug, and a retry
    may well succeed. Each adapter turns its driver's errors of this kind into this one; no other
    layer sees a driver.

    ``maybe_applied``: the failure came after the call had reached the database (a statement or
    its commit timed out, the connection broke under it), so a write may have been made. False:
    nothing reached the database (no connection, the breaker open, queued past the deadline)."""

    def __init__(self, reason: str, *, maybe_applied: bool = False) -> None:
        super().__init__(reason)
        self.maybe_applied = maybe_applied


# What one create-order writes: the domain's plan, under the name the store contract has used.
NewOrder = CreatePlan


@dataclass(frozen=True, slots=True)
class Created:
    order_id: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The idempotency key was already used; nothing was written."""

    existing: IdempotencyRecord


@dataclass(frozen=True, slots=True)
class OutOfStock:
    """A line asked for more than is in stock; nothing was written."""

    sku: str


@dataclass(frozen=True, slots=True)
class CouponExhausted:
    """The coupon reached its redemption limit; nothing was written."""

    code: str


@dataclass(frozen=True, slots=True)
class OpenOrdersExceeded:
    """The customer already has ``cap`` unpaid orders (their restrictions); nothing was written."""

    cap: int


@dataclass(frozen=True, slots=True)
class CatalogStale:
    """The customer's restrictions, the coupon or a product changed after the catalog version that
    priced the order (another process changed them; this one has not loaded it yet); nothing was
    written."""


CreateOutcome = Created | Duplicate | OutOfStock | CouponExhausted | OpenOrdersExceeded | CatalogStale


class PaymentAlreadyRecorded(StoreError):
    """Another delivery of the same provider event was recorded first."""


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of the ordered feed: ``position`` follows commit order."""

    position: int
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An outbox row claimed by a relay."""

    position: int
    event_id: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    event_type: str
    envelope: str  # the JSON text, exactly as written with the state change
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadEvent:
    position: int
    event_id: str
    event_type: str
    aggregate_id: str
    sequence: int
    attempts: int
    last_error: str | None
    dead_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    oldest_pending_at: datetime | None  # relay lag = now - this
    dead: int


class OutboxStore(Protocol):
    """What the relay needs from the database; both stores implement it."""

    async def claim_outbox(self, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        """Leases up to ``limit`` publishable events: unpublished, not dead, due, not leased by a
        live relay, and the earliest unpublished event of their aggregate (so several relays never
        reorder one order's events). Claimed with FOR UPDATE SKIP LOCKED on PostgreSQL."""

    async def mark_published(self, published: list[tuple[int, str]]) -> None:
        """(position, broker reference) pairs, once the broker has acknowledged them."""

    async def mark_failed(self, failed: list[tuple[int, str]], max_attempts: int, delays: list[float]) -> None:
        """(position, error) pairs; ``delays[i]`` is the backoff before the next attempt of the
        i-th; an event reaching ``max_attempts`` becomes dead."""

    async def dead_events(self, limit: int) -> list[DeadEvent]: ...

    async def replay_dead(self, event_id: str) -> bool:
        """Makes a dead event publishable again; False when there is no such dead event."""

    async def outbox_stats(self) -> OutboxStats: ...

    async def published_refs(self, limit: int, before: int | None = None) -> list[tuple[int, str]]:
        """(position, broker reference) of the most recently published events, newest first; with
        ``before``, those at positions below it (the next page)."""

    async def published_count(self) -> int:
        """How many events hold a broker reference (published and not since lost)."""

    async def unpublish(self, positions: list[int]) -> None:
        """Marks events for publishing again (a broker lost them)."""

    async def renew_outbox(self, positions: list[int], lease_seconds: float) -> None:
        """Extends the lease of claimed events still in hand (a relay's heartbeat while a batch is
        publishing) to ``lease_seconds`` from now; released, published or dead events are left alone."""

    async def release_outbox(self, positions: list[int]) -> None:
        """Ends the lease of claimed events not yet published (a relay stopping mid-batch), so the
        next relay claims them at once instead of after the lease."""

    async def listen_outbox(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        """Calls ``wake`` whenever outbox rows commit, where the database can tell (PostgreSQL's
        LISTEN/NOTIFY); returns how to stop listening, or None where it cannot (then poll)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    prefix: str
    key_hash: bytes
    name: str
    roles: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str  # missing_events | orphan_event | reserved_stock
    subject: str  # the order, event or SKU concerned
    detail: str


class Store(OutboxStore, Protocol):
    kind: str

    async def open(self, *, check_schema: bool = True) -> None:
        """Connects and checks the schema is current (raises SchemaOutOfDate otherwise)."""

    async def migrate(self) -> list[str]:
        """Applies the migrations not yet applied, in order; returns their names."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""

    async def create_orders(self, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
        """Per order, one all-or-nothing transaction: idempotency record, coupon redemption
        (within its limit), stock reservation, order and lines, outbox event."""

    async def get_order(self, order_id: str) -> Order | None: ...

    async def change_order(self, order_id: str, plan: Callable[[Order], TransitionPlan]) -> TransitionPlan | None:
        """Locks the order, asks ``plan`` (pure; may raise to change nothing) for the writes, and
        applies them in one transaction, deciding nothing. Returns the plan applied, or None when
        there is no such order. Raises PaymentAlreadyRecorded when the plan's payment event was
        recorded before (and then writes nothing)."""

    async def find_payment(self, event_id: str) -> PaymentRecord | None: ...

    async def expire_orders(
        self, created_before: datetime, limit: int, plan: Callable[[Order], TransitionPlan]
    ) -> list[Order]:
        """Locks up to ``limit`` unpaid orders created before the cutoff (skipping any another
        process holds), applies ``plan`` of each in one transaction, with the stock moves of the
        whole batch summed and taken in SKU order; returns the orders after. Safe to run in
        several processes at once."""

    async def put_api_key(self, record: ApiKeyRecord) -> None: ...

    async def get_api_key(self, prefix: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, prefix: str) -> bool:
        """True when a live key was revoked."""

    async def reconcile(self) -> list[Discrepancy]:
        """Every order has its events (sequences 1..n, no gap), every event has its order, and
        every product's reserved stock equals the quantities of its unpaid orders."""

    async def events_after(self, position: int, limit: int) -> list[FeedEvent]:
        """The event feed: events after ``position`` in commit order. Never skips an event whose
        transaction commits late: it does not read past a transaction still in flight."""

    async def list_orders(self, customer_id: str, limit: int, before: str | None) -> list[Order]:
        """The customer's orders, newest first, with ids below ``before`` when given."""

    async def find_idempotency(self, principal: str, key: str) -> IdempotencyRecord | None: ...

    async def put_product(self, spec: ProductSpec) -> tuple[Product, bool]:
        """Creates or replaces a product; True when it was created. Takes a new catalog version."""

    async def get_product(self, sku: str) -> Product | None: ...

    async def put_coupon(self, spec: CouponSpec) -> tuple[Coupon, bool]:
        """Creates or replaces a coupon (its redemption count is kept)."""

    async def get_coupon(self, code: str) -> Coupon | None: ...

    async def put_promotion(self, spec: PromotionSpec) -> tuple[Promotion, bool]: ...

    async def get_promotion(self, promotion_id: str) -> Promotion | None: ...

    async def put_restrictions(self, spec: RestrictionsSpec) -> tuple[Restrictions, bool]:
        """A customer's restrictions, under the next catalog version (all lifted: still a row,
        so every snapshot learns of the change)."""

    async def get_restrictions(self, customer_id: str) -> Restrictions | None: ...

    # The catalog listings page by primary key (keyset): up to ``limit`` rows whose key is above
    # ``after`` (from the first when None), in key order, each read as its single get reads it.

    async def list_products(self, after: str | None, limit: int) -> list[Product]:
        """Products by SKU, with their current stock."""

    async def list_coupons(self, after: str | None, limit: int) -> list[Coupon]:
        """Coupons by code."""

    async def list_promotions(self, after: str | None, limit: int) -> list[Promotion]:
        """Promotions by id."""

    async def catalog_since(self, version: int) -> CatalogChanges:
        """Products, coupons and promotions changed after catalog ``version``. Versions become
        visible in order, so a reader that remembers the highest one it saw misses nothing."""
