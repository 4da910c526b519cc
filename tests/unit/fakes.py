"""A small in-memory Store for service-level tests (the real stores have their contract suite)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from orderfast.domain.catalog import (
    CatalogChanges,
    Coupon,
    CouponSpec,
    PriceRow,
    Product,
    ProductSpec,
    Promotion,
    PromotionSpec,
)
from orderfast.domain.orders import Order
from orderfast.store.base import (
    CouponExhausted,
    Created,
    CreateOutcome,
    Duplicate,
    IdempotencyRecord,
    NewOrder,
    OutOfStock,
)


class FakeStore:
    kind = "fake"

    def __init__(self) -> None:
        self.products: dict[str, Product] = {}
        self.orders: dict[str, Order] = {}
        self.keys: dict[tuple[str, str], IdempotencyRecord] = {}
        self.coupons: dict[str, Coupon] = {}
        self.gate: asyncio.Event | None = None  # when set, create_orders waits for it
        self.entered = asyncio.Event()
        self.healthy = True
        self._version = 0

    async def open(self, *, check_schema: bool = True) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self) -> list[str]:
        return []

    async def ping(self) -> bool:
        return self.healthy

    async def create_orders(self, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        out: list[CreateOutcome] = []
        for plan in batch:  # applies each plan, checking its conditions in the plan's order
            k = (plan.idempotency.principal, plan.idempotency.key)
            coupon = None if plan.coupon is None else self.coupons.get(plan.coupon)
            short = next(
                (m.sku for m in plan.stock if m.sku not in self.products or self.products[m.sku].stock + m.stock < 0),
                None,
            )
            if k in self.keys:
                out.append(Duplicate(self.keys[k]))
            elif plan.coupon is not None and (coupon is None or not _room(coupon)):
                out.append(CouponExhausted(plan.coupon))
            elif short is not None:
                out.append(OutOfStock(short))
            else:
                for m in plan.stock:
                    self.products[m.sku] = replace(self.products[m.sku], stock=self.products[m.sku].stock + m.stock)
                if coupon is not None:
                    self.coupons[coupon.spec.code] = replace(coupon, redemptions=coupon.redemptions + 1)
                self.orders[plan.order.id] = plan.order
                self.keys[k] = plan.idempotency
                out.append(Created(plan.order.id))
        return out

    async def get_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    async def list_orders(self, customer_id: str, limit: int, before: str | None) -> list[Order]:
        mine = sorted(
            (o for o in self.orders.values() if o.customer_id == customer_id),
            key=lambda o: o.id,
            reverse=True,
        )
        return [o for o in mine if before is None or o.id < before][:limit]

    async def find_idempotency(self, principal: str, key: str) -> IdempotencyRecord | None:
        return self.keys.get((principal, key))

    async def put_product(self, spec: ProductSpec) -> tuple[Product, bool]:
        self._version += 1
        created = spec.sku not in self.products
        p = Product(
            spec.sku,
            spec.name,
            spec.currency,
            spec.price,
            spec.stock,
            self._version,
            datetime.now(UTC),
            spec.tax_class,
            spec.max_per_order,
        )
        self.products[spec.sku] = p
        return p, created

    async def get_product(self, sku: str) -> Product | None:
        return self.products.get(sku)

    async def catalog_since(self, version: int) -> CatalogChanges:
        return CatalogChanges(
            products=[
                PriceRow.of(p) for p in sorted(self.products.values(), key=lambda p: p.version) if p.version > version
            ],
            coupons=sorted((c for c in self.coupons.values() if c.version > version), key=lambda c: c.version),
        )

    async def put_coupon(self, spec: CouponSpec) -> tuple[Coupon, bool]:
        self._version += 1
        old = self.coupons.get(spec.code)
        coupon = Coupon(spec, old.redemptions if old else 0, self._version, datetime.now(UTC))
        self.coupons[spec.code] = coupon
        return coupon, old is None

    async def get_coupon(self, code: str) -> Coupon | None:
        return self.coupons.get(code)

    async def put_promotion(self, spec: PromotionSpec) -> tuple[Promotion, bool]:
        raise NotImplementedError("not needed by the service tests")

    async def get_promotion(self, promotion_id: str) -> Promotion | None:
        return None


def _room(coupon: Coupon) -> bool:
    limit = coupon.spec.max_redemptions
    return limit is None or coupon.redemptions < limit
