"""The embedded default store: one SQLite file, WAL mode, ``synchronous=FULL``.

sqlite3 blocks, so every call runs on one dedicated thread per process that owns the connection;
the event loop never waits on the disk. Each call is one whole transaction on that thread.
Several worker processes share the file: ``BEGIN IMMEDIATE`` plus a busy timeout serialises
writers, and WAL lets readers proceed alongside them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

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
from orderfast.domain.orders import Order, utc_now_ms
from orderfast.store import migrations, reconcile_sql
from orderfast.store.base import (
    ApiKeyRecord,
    ConstraintViolation,
    CreateOutcome,
    DeadEvent,
    Discrepancy,
    FeedEvent,
    IdempotencyRecord,
    NewOrder,
    OutboxMessage,
    OutboxStats,
    PaymentRecord,
    StoreError,
    StoreUnavailable,
    TransitionPlan,
)
from orderfast.store.group_commit import GroupCommit
from orderfast.store.sqlite import catalog, lifecycle, orders, outbox
from orderfast.store.sqlite.codec import from_ms, opt_from_ms, to_ms

T = TypeVar("T")


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000, group_max: int = 64) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        # One writer thread, so one batch in flight: orders arriving meanwhile share the next commit.
        self.group = GroupCommit(self._create_batch, max_batch=group_max, inflight=1)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        try:
            return fn(self._conn)
        except sqlite3.IntegrityError as e:
            raise ConstraintViolation(e.sqlite_errorname) from None
        except sqlite3.OperationalError as e:
            # Locked past the busy timeout, or the disk failing or full: retry later, not a bug.
            if e.sqlite_errorname.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL")):
                raise StoreUnavailable(e.sqlite_errorname) from e
            raise

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, exactly where we mean them.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk before we acknowledge the order, even across power loss.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def open(self, *, check_schema: bool = True) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="orderfast-sqlite")
        if check_schema:
            migrations.check_version("SQLite", await self._run(_schema_version), migrations.latest("sqlite"))

    async def close(self) -> None:
        if self._executor is None:
            return

        def _close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self._run(_close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def migrate(self) -> list[str]:
        return await self._run(_migrate)

    async def ping(self) -> bool:
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone() == (1,))
        except (sqlite3.Error, StoreError):
            return False

    async def create_orders(self, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
        return await self.group.submit(batch)

    async def _create_batch(self, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
        return await self._run(lambda conn: orders.create_batch(conn, batch))

    async def get_order(self, order_id: str) -> Order | None:
        return await self._run(lambda conn: orders.get_order(conn, order_id))

    async def list_orders(self, customer_id: str, limit: int, before: str | None) -> list[Order]:
        return await self._run(lambda conn: orders.list_orders(conn, customer_id, limit, before))

    async def change_order(self, order_id: str, plan: Callable[[Order], TransitionPlan]) -> TransitionPlan | None:
        return await self._run(lambda conn: lifecycle.change_order(conn, order_id, plan))

    async def find_payment(self, event_id: str) -> PaymentRecord | None:
        return await self._run(lambda conn: lifecycle.find_payment(conn, event_id))

    async def expire_orders(
        self, created_before: datetime, limit: int, plan: Callable[[Order], TransitionPlan]
    ) -> list[Order]:
        return await self._run(lambda conn: lifecycle.expire_orders(conn, created_before, limit, plan))

    async def put_api_key(self, record: ApiKeyRecord) -> None:
        def _put(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO api_keys (prefix, key_hash, name, roles, created_at) VALUES (?, ?, ?, ?, ?)",
                (record.prefix, record.key_hash, record.name, ",".join(record.roles), to_ms(record.created_at)),
            )

        await self._run(_put)

    async def get_api_key(self, prefix: str) -> ApiKeyRecord | None:
        def _get(conn: sqlite3.Connection) -> ApiKeyRecord | None:
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE prefix = ?", (prefix,)).fetchone()
            return None if row is None else _api_key(row)

        return await self._run(_get)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return await self._run(
            lambda conn: [_api_key(r) for r in conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at")]
        )

    async def revoke_api_key(self, prefix: str) -> bool:
        def _revoke(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
                (to_ms(utc_now_ms()), prefix),
            )
            return cur.rowcount == 1

        return await self._run(_revoke)

    async def reconcile(self) -> list[Discrepancy]:
        return await self._run(_reconcile)

    async def events_after(self, position: int, limit: int) -> list[FeedEvent]:
        return await self._run(lambda conn: lifecycle.events_after(conn, position, limit))

    async def find_idempotency(self, principal: str, key: str) -> IdempotencyRecord | None:
        return await self._run(lambda conn: orders.find_idempotency(conn, principal, key))

    async def put_product(self, spec: ProductSpec) -> tuple[Product, bool]:
        return await self._run(lambda conn: catalog.put_product(conn, spec))

    async def get_product(self, sku: str) -> Product | None:
        return await self._run(lambda conn: catalog.get_product(conn, sku))

    async def put_coupon(self, spec: CouponSpec) -> tuple[Coupon, bool]:
        return await self._run(lambda conn: catalog.put_coupon(conn, spec))

    async def get_coupon(self, code: str) -> Coupon | None:
        return await self._run(lambda conn: catalog.get_coupon(conn, code))

    async def put_promotion(self, spec: PromotionSpec) -> tuple[Promotion, bool]:
        return await self._run(lambda conn: catalog.put_promotion(conn, spec))

    async def get_promotion(self, promotion_id: str) -> Promotion | None:
        return await self._run(lambda conn: catalog.get_promotion(conn, promotion_id))

    async def put_restrictions(self, spec: RestrictionsSpec) -> tuple[Restrictions, bool]:
        return await self._run(lambda conn: catalog.put_restrictions(conn, spec))

    async def get_restrictions(self, customer_id: str) -> Restrictions | None:
        return await self._run(lambda conn: catalog.get_restrictions(conn, customer_id))

    async def list_products(self, after: str | None, limit: int) -> list[Product]:
        return await self._run(lambda conn: catalog.list_products(conn, after, limit))

    async def list_coupons(self, after: str | None, limit: int) -> list[Coupon]:
        return await self._run(lambda conn: catalog.list_coupons(conn, after, limit))

    async def list_promotions(self, after: str | None, limit: int) -> list[Promotion]:
        return await self._run(lambda conn: catalog.list_promotions(conn, after, limit))

    async def catalog_since(self, version: int) -> CatalogChanges:
        return await self._run(lambda conn: catalog.catalog_since(conn, version))

    # -- relay ----------------------------------------------------------------------------------

    async def claim_outbox(self, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        return await self._run(lambda conn: outbox.claim(conn, limit, lease_seconds))

    async def mark_published(self, published: list[tuple[int, str]]) -> None:
        return await self._run(lambda conn: outbox.mark_published(conn, published))

    async def mark_failed(self, failed: list[tuple[int, str]], max_attempts: int, delays: list[float]) -> None:
        return await self._run(lambda conn: outbox.mark_failed(conn, failed, max_attempts, delays))

    async def dead_events(self, limit: int) -> list[DeadEvent]:
        return await self._run(lambda conn: outbox.dead_events(conn, limit))

    async def replay_dead(self, event_id: str) -> bool:
        return await self._run(lambda conn: outbox.replay_dead(conn, event_id))

    async def outbox_stats(self) -> OutboxStats:
        return await self._run(lambda conn: outbox.stats(conn))

    async def published_refs(self, limit: int, before: int | None = None) -> list[tuple[int, str]]:
        return await self._run(lambda conn: outbox.published_refs(conn, limit, before))

    async def published_count(self) -> int:
        return await self._run(outbox.published_count)

    async def renew_outbox(self, positions: list[int], lease_seconds: float) -> None:
        return await self._run(lambda conn: outbox.renew(conn, positions, lease_seconds))

    async def release_outbox(self, positions: list[int]) -> None:
        return await self._run(lambda conn: outbox.release(conn, positions))

    async def unpublish(self, positions: list[int]) -> None:
        return await self._run(lambda conn: outbox.unpublish(conn, positions))

    async def listen_outbox(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        return None  # one process writes SQLite; its relay polls


_KEY_COLUMNS = "prefix, key_hash, name, roles, created_at, revoked_at"


def _api_key(r: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        r[0], bytes(r[1]), r[2], tuple(x for x in r[3].split(",") if x), from_ms(r[4]), opt_from_ms(r[5])
    )


def _reconcile(conn: sqlite3.Connection) -> list[Discrepancy]:
    found = [
        Discrepancy("missing_events", oid, f"last_sequence {last}, {n} events up to sequence {top}")
        for oid, last, n, top in conn.execute(reconcile_sql.MISSING_EVENTS)
    ]
    found += [
        Discrepancy("orphan_event", eid, f"event of missing order {agg}")
        for eid, agg in conn.execute(reconcile_sql.ORPHAN_EVENTS)
    ]
    found += [
        Discrepancy("reserved_stock", sku, f"reserved {reserved}, unpaid orders hold {held}")
        for sku, reserved, held in conn.execute(reconcile_sql.RESERVED_STOCK)
    ]
    return found


def _statements(sql: str) -> list[str]:
    # Whole-line comments go first; our migrations hold no semicolons inside literals or
    # triggers, so a plain split is then exact.
    code = "\n".join(ln for ln in sql.splitlines() if not ln.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
    if exists is None:
        return 0
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(version)


def _migrate(conn: sqlite3.Connection) -> list[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    applied = []
    for m in migrations.load("sqlite"):
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (m.version,)).fetchone()
            if done is None:
                for statement in _statements(m.sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.name, to_ms(utc_now_ms())))
                applied.append(f"{m.version:04d}_{m.name}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied
