"""Catalog SQL for PostgreSQL: products, coupons, promotions, and the shared catalog version.

Every catalog write takes the next value of the ``catalog_version`` sequence under one
transaction-level advisory lock, so versions become visible in the order they were taken and a
reader that remembers the highest version it saw never skips a change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import orjson

from orderfast.domain.catalog import (
    EARLIEST,
    LATEST,
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

T = TypeVar("T")

CATALOG_LOCK = 0x6F66_0002
PRODUCT_COLUMNS = "sku, name, currency, price_minor, stock, version, updated_at, tax_class, max_per_order"
PRICE_COLUMNS = "sku, name, currency, price_minor, stock, version, tax_class, max_per_order"  # PriceRow's order
COUPON_COLUMNS = (
    "code, currency, percent_off, amount_off_minor, min_subtotal_minor, skus, expires_at, "
    "max_redemptions, redemptions, version, updated_at"
)
PROMOTION_COLUMNS = "id, skus, percent_off, min_quantity, starts_at, ends_at, version, updated_at"


def _readable(columns: str, *stamps: str) -> str:
    """The columns for reading rows back: a timestamp outside the catalog range (as older versions
    could store, down to -infinity) reads as NULL instead of failing the whole query in the driver,
    and the row says it is not loadable."""
    out = columns
    outside = []
    for col in stamps:
        inside = f"{col} >= '{EARLIEST.isoformat()}' AND {col} < '{LATEST.isoformat()}'"
        out = out.replace(col, f"CASE WHEN {inside} THEN {col} END AS {col}")
        outside.append(f"({col} IS NOT NULL AND NOT ({inside}))")
    return f"{out}, ({' OR '.join(outside)}) AS unloadable"


COUPON_READ = _readable(COUPON_COLUMNS, "expires_at")
PROMOTION_READ = _readable(PROMOTION_COLUMNS, "starts_at", "ends_at")
_NEXT = "nextval('catalog_version'), date_trunc('milliseconds', clock_timestamp())"


async def _write(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    # A write that breaks a stored rule raises the driver's integrity error, which the store's
    # connection turns into ConstraintViolation.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CATALOG_LOCK)
        row = await conn.fetchrow(sql, *args)
    assert row is not None
    return row


async def put_product(conn: asyncpg.Connection, spec: ProductSpec) -> tuple[Product, bool]:
    row = await _write(
        conn,
        f"INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, {_NEXT}, $6, $7) "
        "ON CONFLICT (sku) DO UPDATE SET name = excluded.name, currency = excluded.currency, "
        "price_minor = excluded.price_minor, stock = excluded.stock, version = excluded.version, "
        "updated_at = excluded.updated_at, tax_class = excluded.tax_class, max_per_order = excluded.max_per_order "
        f"RETURNING {PRODUCT_COLUMNS}, (xmax = 0) AS inserted",
        spec.sku,
        spec.name,
        spec.currency,
        spec.price,
        spec.stock,
        spec.tax_class,
        spec.max_per_order,
    )
    return _product(row), bool(row["inserted"])


async def get_product(conn: asyncpg.Connection, sku: str) -> Product | None:
    row = await conn.fetchrow(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = $1", sku)
    return None if row is None else _product(row)


async def put_coupon(conn: asyncpg.Connection, spec: CouponSpec) -> tuple[Coupon, bool]:
    row = await _write(
        conn,
        f"INSERT INTO coupons ({COUPON_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, {_NEXT}) "
        "ON CONFLICT (code) DO UPDATE SET currency = excluded.currency, percent_off = excluded.percent_off, "
        "amount_off_minor = excluded.amount_off_minor, min_subtotal_minor = excluded.min_subtotal_minor, "
        "skus = excluded.skus, expires_at = excluded.expires_at, max_redemptions = excluded.max_redemptions, "
        "version = excluded.version, updated_at = excluded.updated_at "
        f"RETURNING {COUPON_COLUMNS}, (xmax = 0) AS inserted",
        spec.code,
        spec.currency,
        spec.percent_off,
        spec.amount_off,
        spec.min_subtotal,
        None if spec.skus is None else list(spec.skus),
        spec.expires_at,
        spec.max_redemptions,
    )
    return _coupon(row), bool(row["inserted"])


async def get_coupon(conn: asyncpg.Connection, code: str) -> Coupon | None:
    row = await conn.fetchrow(f"SELECT {COUPON_READ} FROM coupons WHERE code = $1", code)
    return None if row is None else _coupon(row)


async def put_promotion(conn: asyncpg.Connection, spec: PromotionSpec) -> tuple[Promotion, bool]:
    row = await _write(
        conn,
        f"INSERT INTO promotions ({PROMOTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, {_NEXT}) "
        "ON CONFLICT (id) DO UPDATE SET skus = excluded.skus, percent_off = excluded.percent_off, "
        "min_quantity = excluded.min_quantity, starts_at = excluded.starts_at, ends_at = excluded.ends_at, "
        "version = excluded.version, updated_at = excluded.updated_at "
        f"RETURNING {PROMOTION_COLUMNS}, (xmax = 0) AS inserted",
        spec.id,
        list(spec.skus),
        spec.percent_off,
        spec.min_quantity,
        spec.starts_at,
        spec.ends_at,
    )
    return _promotion(row), bool(row["inserted"])


async def get_promotion(conn: asyncpg.Connection, promotion_id: str) -> Promotion | None:
    row = await conn.fetchrow(f"SELECT {PROMOTION_READ} FROM promotions WHERE id = $1", promotion_id)
    return None if row is None else _promotion(row)


async def list_products(conn: asyncpg.Connection, after: str | None, limit: int) -> list[Product]:
    return [_product(r) for r in await _page(conn, PRODUCT_COLUMNS, "products", "sku", after, limit)]


async def list_coupons(conn: asyncpg.Connection, after: str | None, limit: int) -> list[Coupon]:
    return [_coupon(r) for r in await _page(conn, COUPON_READ, "coupons", "code", after, limit)]


async def list_promotions(conn: asyncpg.Connection, after: str | None, limit: int) -> list[Promotion]:
    return [_promotion(r) for r in await _page(conn, PROMOTION_READ, "promotions", "id", after, limit)]


async def _page(
    conn: asyncpg.Connection, columns: str, table: str, key: str, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """One keyset page by primary key: a range read on its index, however deep the page. Keys compare
    in the column's collation, the index's own, so paging never skips or repeats a row under any
    database locale (the order is byte order under C or C.UTF-8, as in SQLite)."""
    rows: list[asyncpg.Record]
    if after is None:
        rows = await conn.fetch(f"SELECT {columns} FROM {table} ORDER BY {key} LIMIT $1", limit)
    else:
        rows = await conn.fetch(f"SELECT {columns} FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT $2", after, limit)
    return rows


async def catalog_since(conn: asyncpg.Connection, version: int) -> CatalogChanges:
    skipped: list[tuple[str, str, int]] = []

    async def since(columns: str, table: str, key: str, make: Callable[[Any], T]) -> list[T]:
        rows = await conn.fetch(f"SELECT {columns} FROM {table} WHERE version > $1 ORDER BY version", version)
        skipped.extend((table, r[key], r["version"]) for r in rows if r.get("unloadable"))
        return [make(r) for r in rows if not r.get("unloadable")]

    return CatalogChanges(
        products=await since(PRICE_COLUMNS, "products", "sku", PriceRow._make),
        coupons=await since(COUPON_READ, "coupons", "code", _coupon),
        promotions=await since(PROMOTION_READ, "promotions", "id", _promotion),
        restrictions=await since(RESTRICTION_COLUMNS, "customer_restrictions", "customer_id", _restrictions),
        skipped=skipped,
    )


def _product(r: Any) -> Product:
    return Product(
        r["sku"],
        r["name"],
        r["currency"],
        r["price_minor"],
        r["stock"],
        r["version"],
        r["updated_at"],
        r["tax_class"],
        r["max_per_order"],
    )


def _coupon(r: Any) -> Coupon:
    spec = CouponSpec(
        code=r["code"],
        currency=r["currency"],
        percent_off=r["percent_off"],
        amount_off=r["amount_off_minor"],
        min_subtotal=r["min_subtotal_minor"],
        skus=None if r["skus"] is None else tuple(r["skus"]),
        expires_at=r["expires_at"],
        max_redemptions=r["max_redemptions"],
    )
    return Coupon(spec, r["redemptions"], r["version"], r["updated_at"])


def _promotion(r: Any) -> Promotion:
    spec = PromotionSpec(r["id"], tuple(r["skus"]), r["percent_off"], r["min_quantity"], r["starts_at"], r["ends_at"])
    return Promotion(spec, r["version"], r["updated_at"])


RESTRICTION_COLUMNS = (
    "customer_id, blocked, max_order_value::text AS max_order_value, max_open_orders, version, updated_at"
)


async def put_restrictions(conn: asyncpg.Connection, spec: RestrictionsSpec) -> tuple[Restrictions, bool]:
    row = await _write(
        conn,
        "INSERT INTO customer_restrictions (customer_id, blocked, max_order_value, max_open_orders, version, "
        f"updated_at) VALUES ($1, $2, $3::jsonb, $4, {_NEXT}) "
        "ON CONFLICT (customer_id) DO UPDATE SET blocked = excluded.blocked, "
        "max_order_value = excluded.max_order_value, max_open_orders = excluded.max_open_orders, "
        "version = excluded.version, updated_at = excluded.updated_at "
        f"RETURNING {RESTRICTION_COLUMNS}, (xmax = 0) AS inserted",
        spec.customer_id,
        spec.blocked,
        orjson.dumps(dict(spec.max_order_value)).decode(),
        spec.max_open_orders,
    )
    return _restrictions(row), bool(row["inserted"])


async def get_restrictions(conn: asyncpg.Connection, customer_id: str) -> Restrictions | None:
    row = await conn.fetchrow(
        f"SELECT {RESTRICTION_COLUMNS} FROM customer_restrictions WHERE customer_id = $1", customer_id
    )
    return None if row is None else _restrictions(row)


def _restrictions(r: Any) -> Restrictions:
    values = orjson.loads(r["max_order_value"])
    spec = RestrictionsSpec(r["customer_id"], r["blocked"], tuple(sorted(values.items())), r["max_open_orders"])
    return Restrictions(spec, r["version"], r["updated_at"])
