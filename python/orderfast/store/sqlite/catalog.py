"""Catalog SQL for SQLite: products, coupons, promotions, and the shared catalog version."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import orjson

from orderfast.domain.catalog import (
    EARLIEST_MS,
    LATEST_MS,
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
from orderfast.domain.orders import utc_now_ms
from orderfast.store.sqlite.codec import (
    from_json_list,
    from_ms,
    opt_ms,
    to_json_list,
    to_ms,
)

T = TypeVar("T")

PRODUCT_COLUMNS = "sku, name, currency, price_minor, stock, version, updated_at, tax_class, max_per_order"
PRICE_COLUMNS = "sku, name, currency, price_minor, stock, version, tax_class, max_per_order"  # PriceRow's order
COUPON_COLUMNS = (
    "code, currency, percent_off, amount_off_minor, min_subtotal_minor, skus, expires_at, "
    "max_redemptions, redemptions, version, updated_at"
)
PROMOTION_COLUMNS = "id, skus, percent_off, min_quantity, starts_at, ends_at, version, updated_at"


def _write(
    conn: sqlite3.Connection, table: str, key: str, value: str, write: Callable[[int, int], T]
) -> tuple[T, bool]:
    """One catalog write in its own transaction, under the next catalog version (SQLite's single
    writer makes versions commit in order)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        existed = conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", (value,)).fetchone()
        (version,) = conn.execute(
            "SELECT max(v) + 1 FROM (SELECT coalesce(max(version), 0) AS v FROM products "
            "UNION ALL SELECT coalesce(max(version), 0) FROM coupons "
            "UNION ALL SELECT coalesce(max(version), 0) FROM promotions "
            "UNION ALL SELECT coalesce(max(version), 0) FROM customer_restrictions)"
        ).fetchone()
        result = write(version, to_ms(utc_now_ms()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result, existed is None


def put_product(conn: sqlite3.Connection, spec: ProductSpec) -> tuple[Product, bool]:
    def write(version: int, now: int) -> Product:
        conn.execute(
            f"INSERT INTO products ({PRODUCT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sku) DO UPDATE SET name = excluded.name, currency = excluded.currency, "
            "price_minor = excluded.price_minor, stock = excluded.stock, version = excluded.version, "
            "updated_at = excluded.updated_at, tax_class = excluded.tax_class, max_per_order = excluded.max_per_order",
            (
                spec.sku,
                spec.name,
                spec.currency,
                spec.price,
                spec.stock,
                version,
                now,
                spec.tax_class,
                spec.max_per_order,
            ),
        )
        return Product(
            spec.sku,
            spec.name,
            spec.currency,
            spec.price,
            spec.stock,
            version,
            from_ms(now),
            spec.tax_class,
            spec.max_per_order,
        )

    return _write(conn, "products", "sku", spec.sku, write)


def get_product(conn: sqlite3.Connection, sku: str) -> Product | None:
    row = conn.execute(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE sku = ?", (sku,)).fetchone()
    return None if row is None else _product(row)


def put_coupon(conn: sqlite3.Connection, spec: CouponSpec) -> tuple[Coupon, bool]:
    def write(version: int, now: int) -> Coupon:
        row = conn.execute(
            f"INSERT INTO coupons ({COUPON_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
            "ON CONFLICT (code) DO UPDATE SET currency = excluded.currency, percent_off = excluded.percent_off, "
            "amount_off_minor = excluded.amount_off_minor, min_subtotal_minor = excluded.min_subtotal_minor, "
            "skus = excluded.skus, expires_at = excluded.expires_at, max_redemptions = excluded.max_redemptions, "
            f"version = excluded.version, updated_at = excluded.updated_at RETURNING {COUPON_COLUMNS}",
            (
                spec.code,
                spec.currency,
                spec.percent_off,
                spec.amount_off,
                spec.min_subtotal,
                to_json_list(spec.skus),
                opt_ms(spec.expires_at),
                spec.max_redemptions,
                version,
                now,
            ),
        ).fetchone()
        return _coupon(row)

    return _write(conn, "coupons", "code", spec.code, write)


def get_coupon(conn: sqlite3.Connection, code: str) -> Coupon | None:
    row = conn.execute(f"SELECT {COUPON_COLUMNS} FROM coupons WHERE code = ?", (code,)).fetchone()
    return None if row is None else _coupon(row)


def put_promotion(conn: sqlite3.Connection, spec: PromotionSpec) -> tuple[Promotion, bool]:
    def write(version: int, now: int) -> Promotion:
        conn.execute(
            f"INSERT INTO promotions ({PROMOTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET skus = excluded.skus, percent_off = excluded.percent_off, "
            "min_quantity = excluded.min_quantity, starts_at = excluded.starts_at, ends_at = excluded.ends_at, "
            "version = excluded.version, updated_at = excluded.updated_at",
            (
                spec.id,
                to_json_list(spec.skus),
                spec.percent_off,
                spec.min_quantity,
                opt_ms(spec.starts_at),
                opt_ms(spec.ends_at),
                version,
                now,
            ),
        )
        return Promotion(spec, version, from_ms(now))

    return _write(conn, "promotions", "id", spec.id, write)


def get_promotion(conn: sqlite3.Connection, promotion_id: str) -> Promotion | None:
    row = conn.execute(f"SELECT {PROMOTION_COLUMNS} FROM promotions WHERE id = ?", (promotion_id,)).fetchone()
    return None if row is None else _promotion(row)


def list_products(conn: sqlite3.Connection, after: str | None, limit: int) -> list[Product]:
    return [_product(r) for r in _page(conn, PRODUCT_COLUMNS, "products", "sku", after, limit)]


def list_coupons(conn: sqlite3.Connection, after: str | None, limit: int) -> list[Coupon]:
    return [_coupon(r) for r in _page(conn, COUPON_COLUMNS, "coupons", "code", after, limit)]


def list_promotions(conn: sqlite3.Connection, after: str | None, limit: int) -> list[Promotion]:
    return [_promotion(r) for r in _page(conn, PROMOTION_COLUMNS, "promotions", "id", after, limit)]


def _page(conn: sqlite3.Connection, columns: str, table: str, key: str, after: str | None, limit: int) -> list[Any]:
    """One keyset page by primary key: a range read on its index, however deep the page."""
    if after is None:
        return conn.execute(f"SELECT {columns} FROM {table} ORDER BY {key} LIMIT ?", (limit,)).fetchall()
    return conn.execute(
        f"SELECT {columns} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?", (after, limit)
    ).fetchall()


def catalog_since(conn: sqlite3.Connection, version: int) -> CatalogChanges:
    skipped: list[tuple[str, str, int]] = []

    def since(columns: str, table: str, stamps: tuple[int, ...], make: Callable[[Any], T]) -> list[T]:
        """``stamps``: the positions of the row's catalog timestamps; a row with one outside the
        catalog range (written before the rule) is skipped, not loaded."""
        rows = conn.execute(f"SELECT {columns}, version FROM {table} WHERE version > ? ORDER BY version", (version,))
        loaded = []
        for *row, row_version in rows:
            if any(row[i] is not None and not _in_range(row[i]) for i in stamps):
                skipped.append((table, row[0], row_version))
            else:
                loaded.append(make(row))
        return loaded

    return CatalogChanges(
        products=since(PRICE_COLUMNS, "products", (), PriceRow._make),
        coupons=since(COUPON_COLUMNS, "coupons", (6,), _coupon),
        promotions=since(PROMOTION_COLUMNS, "promotions", (4, 5), _promotion),
        restrictions=since(RESTRICTION_COLUMNS, "customer_restrictions", (), _restrictions),
        skipped=skipped,
    )


def _in_range(ms: int) -> bool:
    return EARLIEST_MS <= ms < LATEST_MS


def _stamp(ms: int | None) -> datetime | None:
    """A catalog timestamp as read back: one outside the catalog range (written before the rule)
    reads as None, as the PostgreSQL store reads it, and never fails the read."""
    return None if ms is None or not _in_range(ms) else from_ms(ms)


def _product(row: Any) -> Product:
    sku, name, currency, price, stock, version, updated, tax_class, max_per_order = row
    return Product(sku, name, currency, price, stock, version, from_ms(updated), tax_class, max_per_order)


def _coupon(row: Any) -> Coupon:
    code, currency, pct, amount, minimum, skus, expires, max_r, redemptions, version, updated = row
    spec = CouponSpec(code, currency, pct, amount, minimum, from_json_list(skus), _stamp(expires), max_r)
    return Coupon(spec, redemptions, version, from_ms(updated))


def _promotion(row: Any) -> Promotion:
    pid, skus, pct, min_quantity, starts, ends, version, updated = row
    skus_tuple = from_json_list(skus) or ()
    spec = PromotionSpec(pid, skus_tuple, pct, min_quantity, _stamp(starts), _stamp(ends))
    return Promotion(spec, version, from_ms(updated))


RESTRICTION_COLUMNS = "customer_id, blocked, max_order_value, max_open_orders, updated_at, version"


def put_restrictions(conn: sqlite3.Connection, spec: RestrictionsSpec) -> tuple[Restrictions, bool]:
    def write(version: int, now: int) -> Restrictions:
        row = conn.execute(
            "INSERT INTO customer_restrictions (customer_id, blocked, max_order_value, max_open_orders, version, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (customer_id) DO UPDATE SET "
            "blocked = excluded.blocked, max_order_value = excluded.max_order_value, "
            "max_open_orders = excluded.max_open_orders, version = excluded.version, "
            f"updated_at = excluded.updated_at RETURNING {RESTRICTION_COLUMNS}",
            (
                spec.customer_id,
                int(spec.blocked),
                orjson.dumps(dict(spec.max_order_value)).decode(),
                spec.max_open_orders,
                version,
                now,
            ),
        ).fetchone()
        return _restrictions(row)

    return _write(conn, "customer_restrictions", "customer_id", spec.customer_id, write)


def get_restrictions(conn: sqlite3.Connection, customer_id: str) -> Restrictions | None:
    row = conn.execute(
        f"SELECT {RESTRICTION_COLUMNS} FROM customer_restrictions WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    return None if row is None else _restrictions(row)


def _restrictions(row: Any) -> Restrictions:
    customer_id, blocked, values, max_open, updated_at, version = row
    spec = RestrictionsSpec(customer_id, bool(blocked), tuple(sorted(orjson.loads(values).items())), max_open)
    return Restrictions(spec, version, from_ms(updated_at))
