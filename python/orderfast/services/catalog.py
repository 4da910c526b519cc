"""The catalog service: catalog writes and reads, and keeping this process's price snapshot fresh."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from orderfast import _core
from orderfast.domain.catalog import (
    DEMO_CATALOG,
    DEMO_PROMOTIONS,
    CatalogChanges,
    Coupon,
    CouponSpec,
    PriceRow,
    Product,
    ProductSpec,
    Promotion,
    PromotionSpec,
)
from orderfast.domain.customers import Restrictions, RestrictionsSpec
from orderfast.services.errors import ConflictError
from orderfast.store.base import ConstraintViolation, Store, StoreError

log = logging.getLogger("orderfast.catalog")
T = TypeVar("T", bound=tuple[Any, ...])


def _unix(ts: datetime | None) -> int | None:
    return None if ts is None else int(ts.timestamp())


def _load(what: str, upsert: Callable[[list[T]], None], rows: list[T], key: Callable[[T], str]) -> None:
    """All rows of one kind in one atomic step; if the core refuses the batch, row by row, so one
    row it cannot hold (logged) never keeps the others — or the server's start — from loading."""
    if not rows:
        return
    try:
        upsert(rows)
    except (ValueError, TypeError, OverflowError):
        for row in rows:
            try:
                upsert([row])
            except (ValueError, TypeError, OverflowError) as e:
                log.warning("catalog row not loaded: %s %r: %s", what, key(row), e)


def load_into(catalog: _core.Catalog, changes: CatalogChanges) -> None:
    """Copies catalog rows into the Rust snapshot."""
    for table, key, version in changes.skipped:
        log.warning(
            "catalog row not loaded: %s %r (version %d) has a timestamp outside 1970-01-01..9999-12-31 UTC; "
            "write it again to fix it",
            table,
            key,
            version,
        )
    products: list[tuple[str, str, str, int, str | None, int | None]] = [
        (p.sku, p.name, p.currency, p.price, p.tax_class, p.max_per_order) for p in changes.products
    ]
    _load("products", catalog.upsert, products, lambda row: row[0])
    _load(
        "coupons",
        catalog.upsert_coupons,
        [
            (
                s.code,
                s.currency,
                s.percent_off,
                s.amount_off,
                s.min_subtotal,
                None if s.skus is None else list(s.skus),
                _unix(s.expires_at),
                s.max_redemptions,
                c.redemptions,
            )
            for c in changes.coupons
            for s in (c.spec,)
        ],
        lambda row: row[0],
    )
    _load(
        "promotions",
        catalog.upsert_promotions,
        [
            (s.id, list(s.skus), s.percent_off, s.min_quantity, _unix(s.starts_at), _unix(s.ends_at))
            for p in changes.promotions
            for s in (p.spec,)
        ],
        lambda row: row[0],
    )
    lifted = [r.spec.customer_id for r in changes.restrictions if r.spec.lifted]
    if lifted:
        catalog.lift_restrictions(lifted)
    _load(
        "restrictions",
        catalog.set_restrictions,
        [
            (s.customer_id, s.blocked, dict(s.max_order_value), s.max_open_orders)
            for r in changes.restrictions
            for s in (r.spec,)
            if not s.lifted
        ],
        lambda row: row[0],
    )


class CatalogService:
    def __init__(self, store: Store, catalog: _core.Catalog, tax_rates: Mapping[str, str] | None = None) -> None:
        self._store = store
        self._catalog = catalog
        self._version = 0
        self.refreshed_at = time.monotonic()
        self.tax_rates = dict(tax_rates or {})
        self._catch_up_lock = asyncio.Lock()
        self._catch_ups = 0  # catch-up refreshes started
        self._loaded = 0  # rows loaded by every refresh so far

    @property
    def version(self) -> int:
        return self._version

    def is_tax_class(self, name: str) -> bool:
        return name in self.tax_rates

    # This process prices with its own writes at once, the others within one refresh interval (and
    # an order never with a row older than the store's: the create transaction refuses it as stale).

    async def _written(self, changes: CatalogChanges) -> None:
        """Loads this process's own write, then catches the snapshot up, so that its version covers
        the write. (The version is not advanced by the write alone: an older change by another
        process may still be unread, and the next refresh must not skip it.) Until it does, every
        order for the written row would be refused as stale once and priced again. A refresh that
        fails leaves the write loaded and the version to the timed refresh."""
        load_into(self._catalog, changes)
        try:
            await self.catch_up()
        except StoreError as e:
            log.warning("catalog refresh after a write failed (%s); the next timed refresh catches up", e)

    async def put(self, spec: ProductSpec) -> tuple[Product, bool]:
        product, created = await self._store.put_product(spec)
        await self._written(CatalogChanges(products=[PriceRow.of(product)]))
        return product, created

    async def get(self, sku: str) -> Product | None:
        return await self._store.get_product(sku)

    async def put_coupon(self, spec: CouponSpec) -> tuple[Coupon, bool]:
        try:
            coupon, created = await self._store.put_coupon(spec)
        except ConstraintViolation:
            raise ConflictError("the change conflicts with the coupon's redemptions so far") from None
        await self._written(CatalogChanges(coupons=[coupon]))
        return coupon, created

    async def get_coupon(self, code: str) -> Coupon | None:
        return await self._store.get_coupon(code)

    async def put_promotion(self, spec: PromotionSpec) -> tuple[Promotion, bool]:
        promotion, created = await self._store.put_promotion(spec)
        await self._written(CatalogChanges(promotions=[promotion]))
        return promotion, created

    async def get_promotion(self, promotion_id: str) -> Promotion | None:
        return await self._store.get_promotion(promotion_id)

    async def put_restrictions(self, spec: RestrictionsSpec) -> tuple[Restrictions, bool]:
        """Orders everywhere are bound at once (the create transaction refuses a snapshot older
        than them); this process's quotes at once, the others' within one refresh interval."""
        restrictions, created = await self._store.put_restrictions(spec)
        await self._written(CatalogChanges(restrictions=[restrictions]))
        return restrictions, created

    async def get_restrictions(self, customer_id: str) -> Restrictions | None:
        return await self._store.get_restrictions(customer_id)

    # The listings: keyset pages by key (SKU, code, id), up to ``limit`` rows above ``after``.

    async def list_products(self, after: str | None, limit: int) -> list[Product]:
        return await self._store.list_products(after, limit)

    async def list_coupons(self, after: str | None, limit: int) -> list[Coupon]:
        return await self._store.list_coupons(after, limit)

    async def list_promotions(self, after: str | None, limit: int) -> list[Promotion]:
        return await self._store.list_promotions(after, limit)

    async def refresh(self) -> int:
        """Loads everything changed since the last refresh; returns how many rows."""
        changes = await self._store.catalog_since(self._version)
        if changes:
            load_into(self._catalog, changes)
            self._version = max(self._version, changes.latest_version)
        self.refreshed_at = time.monotonic()
        self._loaded += changes.loaded
        return changes.loaded

    async def catch_up(self) -> int:
        """A refresh for a request the snapshot refused (it may trail another process's write by up
        to one refresh interval); returns how many rows it loaded. Refusals at once share one:
        each waits for a refresh that *starts* after its refusal (one already under way may have
        read the catalog before the write it is missing), and every refusal that arrives while one
        runs shares the next. A burst of refusals — a client ordering SKUs that do not exist — costs
        the database one refresh at a time, not one each."""
        seen, wanted = self._loaded, self._catch_ups + 1
        async with self._catch_up_lock:
            if self._catch_ups < wanted:
                self._catch_ups += 1
                await self.refresh()
        # Rows loaded since the refusal, by any refresh: the one shared, or one already under way
        # then (which may hold what this request was missing, though it cannot be counted on to).
        return self._loaded - seen

    async def refresh_forever(self, interval: float) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                if not failing:  # once per outage, not once per tick
                    log.exception("catalog refresh failed; prices stay as last loaded")
                failing = True
            else:
                if failing:
                    log.info("catalog refresh recovered")
                failing = False


async def seed_demo(store: Store) -> list[str]:
    """Puts the demo catalog (products and a promotion) in an empty store; a store with products is
    left alone."""
    if (await store.catalog_since(0)).products:
        return []
    for spec in DEMO_CATALOG:
        await store.put_product(spec)
    for promotion in DEMO_PROMOTIONS:
        await store.put_promotion(promotion)
    return [spec.sku for spec in DEMO_CATALOG] + [f"promotion {p.id}" for p in DEMO_PROMOTIONS]
