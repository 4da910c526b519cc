"""A catalog row the server cannot load (a timestamp an earlier version stored outside the range:
PostgreSQL's -infinity, year 0 in UTC, year 10000) never breaks a refresh or start-up: it is
skipped and logged, everything else loads, and reading it back is no 500."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from orderfast import _core
from orderfast.domain.catalog import ProductSpec, PromotionSpec
from orderfast.services.catalog import CatalogService
from orderfast.store.base import Store
from orderfast.store.postgres import PostgresStore
from orderfast.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

BAD_PG = ["-infinity", "infinity", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z"]


async def _break_rows(store: Store, dsn: str | None) -> None:
    """Writes, behind the store's back, the rows the old input rule let through."""
    if isinstance(store, PostgresStore):
        assert dsn is not None
        conn = await asyncpg.connect(dsn)
        try:
            for i, stamp in enumerate(BAD_PG):
                await conn.execute(
                    "INSERT INTO promotions (id, skus, percent_off, min_quantity, ends_at, version, updated_at) "
                    "VALUES ($1, ARRAY['SKU-A'], '5', 1, $2::text::timestamptz, nextval('catalog_version'), now())",
                    f"bad-{i}",
                    stamp,
                )
            await conn.execute(
                "INSERT INTO coupons (code, currency, percent_off, expires_at, redemptions, version, updated_at) "
                "VALUES ('BADC', 'USD', '5', '-infinity', 0, nextval('catalog_version'), now())"
            )
        finally:
            await conn.close()
    else:
        assert isinstance(store, SqliteStore)

        def write(conn: object) -> None:
            db = conn  # sqlite3.Connection
            for i, ms in enumerate([-62135596800000, 253402300800000 * 10, -1]):
                db.execute(  # type: ignore[attr-defined]
                    "INSERT INTO promotions (id, skus, percent_off, min_quantity, ends_at, version, updated_at) "
                    "VALUES (?, '[\"SKU-A\"]', '5', 1, ?, 1000 + ?, 0)",
                    (f"bad-{i}", ms, i),
                )
            db.execute(  # type: ignore[attr-defined]
                "INSERT INTO coupons (code, currency, percent_off, expires_at, redemptions, version, updated_at) "
                "VALUES ('BADC', 'USD', '5', -62135596800000, 0, 1100, 0)"
            )
            db.commit()  # type: ignore[attr-defined]

        await store._run(write)


async def test_unloadable_rows_are_skipped_and_logged(
    store: Store, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    await store.put_product(ProductSpec("SKU-A", "A", "USD", 1000, 10))
    dsn = request.getfixturevalue("contract_pg_dsn") if isinstance(store, PostgresStore) else None
    await _break_rows(store, dsn)
    good, _ = await store.put_promotion(PromotionSpec("good", ("SKU-A",), "10"))

    catalog = _core.Catalog()
    service = CatalogService(store, catalog)
    logger = logging.getLogger("orderfast")
    logger.addHandler(caplog.handler)
    try:
        loaded = await service.refresh()
    finally:
        logger.removeHandler(caplog.handler)
    assert loaded == 2  # the product and the good promotion
    assert service.version >= good.version  # past the skipped rows too
    skipped = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()]
    assert any("'bad-0'" in m for m in skipped) and any("'BADC'" in m for m in skipped), skipped
    # The good promotion prices; no bad one does (they would have given 5 %).
    quote = catalog.quote(b'{"currency": "USD", "items": [{"sku": "SKU-A", "quantity": 1}]}')
    assert b'"discount":"1.00"' in quote, quote
    # A second refresh has nothing new: the skipped rows are not read (and logged) again.
    assert await service.refresh() == 0
    # Reading one back is an answer, not a driver error, on either store: the stamp outside the
    # range reads as none, the rest of the row as written.
    for i in range(3):
        promotion = await store.get_promotion(f"bad-{i}")
        assert promotion is not None and promotion.spec.ends_at is None
        assert (promotion.spec.skus, promotion.spec.percent_off) == (("SKU-A",), "5")
    coupon = await store.get_coupon("BADC")
    assert coupon is not None and coupon.spec.expires_at is None and coupon.spec.percent_off == "5"
    # So is listing them: one such row does not fail its page.
    promotions = await store.list_promotions(None, 100)
    assert [p.spec.id for p in promotions] == sorted(["good", *(f"bad-{i}" for i in range(len(promotions) - 1))])
    assert [p for p in promotions if p.spec.id.startswith("bad-")] == [
        await store.get_promotion(p.spec.id) for p in promotions if p.spec.id.startswith("bad-")
    ]
    assert await store.list_coupons(None, 100) == [coupon]
