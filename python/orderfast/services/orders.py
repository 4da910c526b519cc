"""Create, read and list orders: the order service the HTTP layer calls.

Create-order, in order: validate (Rust) → claim the idempotency key in this process (Rust map) →
price from the snapshot (Rust) → one store transaction → remember the response. The map is only
the fast path; the store's unique (principal, key) record is the guard that holds across
processes, restarts and evictions. The transaction also checks that the snapshot that priced the
order was not older than the customer's restrictions, the coupon or the products (changed through
another process): if it was, nothing is written, and the order is priced again after the snapshot
catches up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from orderfast import _core
from orderfast.domain.events import order_created
from orderfast.domain.orders import (
    Order,
    format_timestamp,
    new_order,
    order_location,
    utc_now_ms,
)
from orderfast.observability import instruments as m
from orderfast.observability import tracing
from orderfast.services.errors import InvalidInputError, OutOfStockError
from orderfast.services.order_cache import OrderCache, OrderDocument
from orderfast.store.base import (
    CatalogStale,
    CouponExhausted,
    Created,
    Duplicate,
    IdempotencyRecord,
    NewOrder,
    OpenOrdersExceeded,
    OutOfStock,
    Store,
    StoreUnavailable,
)

CREATED = 201


@dataclass(frozen=True, slots=True)
class CreateResult:
    status: int
    body: bytes  # the exact bytes to send, the same on every replay
    location: str
    replayed: bool


# Refusals by the customer's restrictions (the "blocked" one is CustomerBlockedError, a 403).
QUALIFICATION = frozenset({"order_value_limit", "open_orders_limit"})
# Times one order is priced again because the catalog rows it depends on changed after the snapshot
# that priced it: each time after a catch-up refresh, so only rows rewritten faster than a refresh
# exhaust it (answered 503, a retry may succeed).
STALE_ATTEMPTS = 3


class OrderService:
    def __init__(
        self,
        store: Store,
        catalog: _core.Catalog,
        idempotency: _core.IdempotencyMap,
        refresh_catalog: Callable[[], Awaitable[int]],
        cache: OrderCache | None = None,
        catalog_version: Callable[[], int] | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._idempotency = idempotency
        self._refresh_catalog = refresh_catalog
        self._cache = cache
        # The version of the catalog the snapshot holds; None: orders are not checked against catalog
        # rows changed elsewhere (a store no other process writes).
        self._catalog_version = catalog_version
        self._loading: dict[str, asyncio.Future[OrderDocument | None]] = {}

    async def _price(self, draft: _core.OrderDraft, customer_id: str) -> _core.PricedOrder:
        try:
            return self._catalog.price(draft, None, customer_id)
        except (_core.ValidationError, _core.PriceChangedError, _core.CustomerBlockedError):
            # The snapshot may trail a change made through another process by up to one refresh
            # interval (a price, a lifted restriction): catch up once before refusing. Only the
            # error path pays for it.
            if await self._refresh_catalog() == 0:
                raise
        return self._catalog.price(draft, None, customer_id)

    async def create(self, customer_id: str, key: str, body: bytes) -> CreateResult:
        """Raises _core.ValidationError, _core.PriceChangedError, _core.KeyInFlightError,
        _core.KeyMismatchError or OutOfStockError. Counted (observability/instruments.py): the
        errors here, the successes where they happen."""
        try:
            result = await self._create(customer_id, key, body)
        except OutOfStockError:
            m.ORDER_REFUSALS.labels("out_of_stock").inc()
            raise
        except _core.PriceChangedError:
            m.ORDER_REFUSALS.labels("price_changed").inc()
            raise
        except _core.CustomerBlockedError:
            m.ORDER_REFUSALS.labels("qualification").inc()
            raise
        except _core.KeyInFlightError:
            m.IDEMPOTENCY.labels("in_use").inc()
            raise
        except _core.KeyMismatchError:
            m.IDEMPOTENCY.labels("reused").inc()
            raise
        except (InvalidInputError, _core.ValidationError) as e:
            # A coupon that does not apply is the catalog's state; other field errors are the client's.
            if any(pointer == "/coupon" for pointer, _, _ in e.errors):
                m.ORDER_REFUSALS.labels("coupon").inc()
            elif any(code in QUALIFICATION for _, code, _ in e.errors):
                m.ORDER_REFUSALS.labels("qualification").inc()
            raise
        if result.replayed:
            m.IDEMPOTENCY.labels("replayed").inc()
        return result

    async def _create(self, customer_id: str, key: str, body: bytes) -> CreateResult:
        # Traced (each step a span when tracing is on; one test of a flag each when it is off).
        if tracing.ENABLED:
            with tracing.span("order.parse", {"orderfast.body_bytes": len(body)}):
                draft = _core.parse_order(body)
        else:
            draft = _core.parse_order(body)
        fingerprint = _core.fingerprint(body)
        map_key = f"{customer_id}\x00{key}"
        replay = self._idempotency.begin(map_key, fingerprint)
        if replay is not None:
            return CreateResult(replay.status, replay.body, _location(replay.headers), True)
        done = False
        try:
            for _ in range(STALE_ATTEMPTS):
                version = None if self._catalog_version is None else self._catalog_version()
                try:
                    if tracing.ENABLED:
                        with tracing.span("order.price"):
                            priced = await self._price(draft, customer_id)
                    else:
                        priced = await self._price(draft, customer_id)
                except (_core.ValidationError, _core.PriceChangedError, _core.CustomerBlockedError):
                    # A retry of an order that succeeded before a price change (or a restart) must
                    # still replay; only the error path pays for this look-up.
                    record = await self._store.find_idempotency(customer_id, key)
                    if record is None:
                        raise
                    result = self._from_record(record, fingerprint)
                    self._remember(map_key, fingerprint, result)
                    done = True
                    return result
                order = new_order(_core.new_order_id(), customer_id, priced, utc_now_ms())
                created_at = format_timestamp(order.created_at)
                if tracing.ENABLED:
                    with tracing.span("order.render"):
                        response = priced.order_json(order.id, order.status.value, customer_id, created_at)
                    # The event carries the request's trace context: the relay and consumers continue it.
                    trace = tracing.carrier()
                else:
                    response = priced.order_json(order.id, order.status.value, customer_id, created_at)
                    trace = None
                new = NewOrder(
                    order=order,
                    # The response bytes are the event's data as they are: no second serialisation.
                    event=order_created(_core.new_order_id(), order, orjson.Fragment(response), trace),
                    idempotency=IdempotencyRecord(customer_id, key, fingerprint, CREATED, response, order.id),
                    open_orders_cap=priced.open_orders_cap,
                    catalog_version=version,
                )
                (outcome,) = await self._store.create_orders([new])
                if not isinstance(outcome, CatalogStale):
                    break
                # Another process changed a row this order depends on after this snapshot loaded.
                await self._refresh_catalog()
            else:
                raise StoreUnavailable("the catalog changed while the order was being placed")
            if isinstance(outcome, Created):
                result = CreateResult(CREATED, response, order_location(order.id), False)
                m.ORDERS_CREATED.labels(priced.currency).inc()
                m.ORDER_VALUE.labels(priced.currency).inc(priced.total)
            elif isinstance(outcome, Duplicate):
                result = self._from_record(outcome.existing, fingerprint)
            elif isinstance(outcome, CouponExhausted):
                raise InvalidInputError([("/coupon", "coupon_exhausted", "this coupon has been used up")])
            elif isinstance(outcome, OpenOrdersExceeded):
                raise InvalidInputError(
                    [("", "open_orders_limit", f"this customer may have at most {outcome.cap} unpaid orders at once")]
                )
            else:
                assert isinstance(outcome, OutOfStock)
                raise OutOfStockError(outcome.sku)
            self._remember(map_key, fingerprint, result)
            done = True
            return result
        finally:
            if not done:
                self._idempotency.abandon(map_key)

    def _from_record(self, record: IdempotencyRecord, fingerprint: bytes) -> CreateResult:
        if record.fingerprint != fingerprint:
            raise _core.KeyMismatchError(record.key)
        return CreateResult(record.status, record.body, order_location(record.order_id), True)

    def _remember(self, map_key: str, fingerprint: bytes, result: CreateResult) -> None:
        self._idempotency.complete(map_key, fingerprint, result.status, [("location", result.location)], result.body)

    async def quote(self, body: bytes, customer_id: str | None = None) -> bytes:
        """Prices a create-order body from the in-memory snapshot: nothing persisted, and no
        database round trip on the happy path — one call into the core, bytes in, bytes out. A
        refusal by the catalog first catches the snapshot up once, as for orders (a body refused
        before pricing does not: no newer snapshot makes it valid). The customer's restrictions
        apply as they would to their order. Raises what pricing raises."""
        try:
            return self._catalog.quote(body, None, customer_id)
        except (_core.ValidationError, _core.PriceChangedError, _core.CustomerBlockedError) as e:
            if not getattr(e, "catalog", True) or await self._refresh_catalog() == 0:
                raise
        return self._catalog.quote(body, None, customer_id)

    async def get(self, order_id: str) -> Order | None:
        if not _core.is_order_id(order_id):
            return None
        return await self._store.get_order(order_id)

    async def document(self, order_id: str) -> OrderDocument | None:
        """An order as a read answers it: from the shared cache when there is one and it holds the
        order; else from the store — one load per worker for a key many readers miss at once (the
        others wait for it) — and then cached."""
        cache = self._cache
        if cache is None:
            order = await self.get(order_id)
            return None if order is None else OrderDocument.of(order)
        if not _core.is_order_id(order_id):
            return None
        if (hit := await cache.get(order_id)) is not None:
            return hit
        if (loading := self._loading.get(order_id)) is not None:
            return await asyncio.shield(loading)
        loading = self._loading[order_id] = asyncio.get_running_loop().create_future()
        try:
            order = await self._store.get_order(order_id)
            document = None if order is None else OrderDocument.of(order)
            if document is not None:
                await cache.put(order_id, document)
        except BaseException as e:
            loading.set_exception(e)
            loading.exception()  # the waiters, if any, raise it; unawaited, it is not "never retrieved"
            raise
        else:
            loading.set_result(document)
            return document
        finally:
            del self._loading[order_id]

    async def list(self, customer_id: str, limit: int, before: str | None) -> list[Order]:
        return await self._store.list_orders(customer_id, limit, before)


def _location(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name == "location":
            return value
    return ""
