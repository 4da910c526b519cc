"""Products, coupons and automatic promotions as the catalog holds them. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from orderfast import _core
from orderfast.domain.customers import Restrictions
from orderfast.domain.orders import format_timestamp

# Every catalog timestamp is an instant in [EARLIEST, LATEST) UTC: both stores, the wire format and
# the Rust core (whole seconds since the epoch) hold each of them exactly. Input outside it is refused;
# a stored row outside it (written before the rule) is skipped when loading, never fatal.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
EARLIEST_MS = 0
LATEST_MS = int(LATEST.timestamp()) * 1000


def in_range(ts: datetime) -> bool:
    return EARLIEST <= ts < LATEST


@dataclass(frozen=True, slots=True)
class ProductSpec:
    """What an administrator sets for a SKU."""

    sku: str
    name: str
    currency: str
    price: int  # minor units
    stock: int
    tax_class: str | None = None
    max_per_order: int | None = None  # the most one order may hold of this SKU


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    currency: str
    price: int  # minor units
    stock: int
    version: int  # catalog version of the last change; increases with every change
    updated_at: datetime
    tax_class: str | None = None
    max_per_order: int | None = None


class PriceRow(NamedTuple):
    """A product as the catalog snapshot loads it: no timestamp. A refresh (and a start) loads every
    changed product; decoding each one's ``updated_at`` and building a ``Product`` was most of the
    cost (10 000 products: ~30 -> ~10 ms, PostgreSQL)."""

    sku: str
    name: str
    currency: str
    price: int  # minor units
    stock: int
    version: int
    tax_class: str | None
    max_per_order: int | None

    @classmethod
    def of(cls, product: Product) -> PriceRow:
        p = product
        return cls(p.sku, p.name, p.currency, p.price, p.stock, p.version, p.tax_class, p.max_per_order)


@dataclass(frozen=True, slots=True)
class CouponSpec:
    """An order-level discount; exactly one of ``percent_off`` (a percentage string) and
    ``amount_off`` (minor units) is set."""

    code: str
    currency: str
    percent_off: str | None = None
    amount_off: int | None = None
    min_subtotal: int | None = None
    skus: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    max_redemptions: int | None = None


@dataclass(frozen=True, slots=True)
class Coupon:
    spec: CouponSpec
    redemptions: int
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PromotionSpec:
    """An automatic line promotion: ``percent_off`` of matching lines."""

    id: str
    skus: tuple[str, ...]
    percent_off: str
    min_quantity: int = 1
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Promotion:
    spec: PromotionSpec
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CatalogChanges:
    """Everything in the catalog changed after some version, each list in version order."""

    products: list[PriceRow] = field(default_factory=list)
    coupons: list[Coupon] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)
    restrictions: list[Restrictions] = field(default_factory=list)
    # Rows the store holds but cannot load (a timestamp outside the range): (kind, key, version).
    skipped: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def latest_version(self) -> int:
        versions = [p.version for p in self.products]
        versions += [c.version for c in self.coupons]
        versions += [p.version for p in self.promotions]
        versions += [r.version for r in self.restrictions]
        versions += [v for *_, v in self.skipped]
        return max(versions, default=0)

    @property
    def loaded(self) -> int:
        """How many rows the snapshot takes in (every kind a price or a refusal depends on)."""
        return len(self.products) + len(self.coupons) + len(self.promotions) + len(self.restrictions)

    def __bool__(self) -> bool:
        return bool(self.loaded or self.skipped)


def product_document(product: Product) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "price": _core.format_amount(product.price, product.currency),
        "currency": product.currency,
        "stock": product.stock,
        "tax_class": product.tax_class,
        "max_per_order": product.max_per_order,
        "updated_at": format_timestamp(product.updated_at),
    }


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def coupon_document(coupon: Coupon) -> dict[str, Any]:
    s = coupon.spec
    fmt = _core.format_amount
    return {
        "code": s.code,
        "currency": s.currency,
        "percent_off": s.percent_off,
        "amount_off": None if s.amount_off is None else fmt(s.amount_off, s.currency),
        "min_subtotal": None if s.min_subtotal is None else fmt(s.min_subtotal, s.currency),
        "skus": None if s.skus is None else list(s.skus),
        "expires_at": _ts(s.expires_at),
        "max_redemptions": s.max_redemptions,
        "redemptions": coupon.redemptions,
        "updated_at": format_timestamp(coupon.updated_at),
    }


def promotion_document(promotion: Promotion) -> dict[str, Any]:
    s = promotion.spec
    return {
        "id": s.id,
        "skus": list(s.skus),
        "percent_off": s.percent_off,
        "min_quantity": s.min_quantity,
        "starts_at": _ts(s.starts_at),
        "ends_at": _ts(s.ends_at),
        "updated_at": format_timestamp(promotion.updated_at),
    }


DEMO_CATALOG: tuple[ProductSpec, ...] = (
    ProductSpec("SKU-1", "Espresso beans, 1 kg", "USD", 9950, 1000),
    ProductSpec("SKU-2", "Burr grinder", "USD", 12900, 50),
    ProductSpec("SKU-3", "Milk jug, 600 ml", "USD", 1450, 200),
    ProductSpec("SKU-4", "Paper filters, 100 pack", "USD", 399, 5000),
    ProductSpec("SKU-JP-1", "Matcha, 100 g", "JPY", 2800, 100),
)
# The demo's automatic promotion: 5 % off three or more bags of beans, for as long as a demo lasts.
DEMO_PROMOTIONS: tuple[PromotionSpec, ...] = (PromotionSpec("bulk-beans", ("SKU-1",), "5", min_quantity=3),)
