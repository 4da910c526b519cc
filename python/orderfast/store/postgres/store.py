"""The PostgreSQL store: pooling, schema checks and migrations; SQL lives in orders.py and catalog.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

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
from orderfast.observability import instruments as m
from orderfast.resilience import deadline
from orderfast.resilience.breaker import Breaker
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
from orderfast.store.consistency import READ_AFTER
from orderfast.store.group_commit import GroupCommit
from orderfast.store.postgres import catalog, lifecycle, orders, outbox
from orderfast.store.postgres.replicas import ReadReplicas

T = TypeVar("T")

_MIGRATE_LOCK = 0x6F66_0001

# The driver's ways of saying the database could not be reached or is going away: network failures,
# pool and statement timeouts, connections closed under a query, a server shutting down or not yet
# accepting connections, a statement that ran out of its budget.
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # the server's statement_timeout: the budget, counted there
)


class _Connection:
    """A pooled connection for one store call, within the request budget, behind the breaker; the
    driver's errors leave it as the store's own (the one place they are converted). A class rather
    than a generator-based context manager: it is on every request's path.

    The budget (resilience/deadline.py) bounds the pool wait and everything the caller does with
    the connection (one ``asyncio.timeout_at``: a wait or a statement still running at the deadline
    is cancelled), then giving it back: a connection that cannot be reset in what is left (at least
    ``RELEASE_FLOOR``) is closed instead."""

    __slots__ = ("_breaker", "_conn", "_fresh", "_pool", "_timeout", "_when")
    acquiring = 0  # callers waiting for a pooled connection now, in this process (a metric)

    def __init__(self, pool: asyncpg.Pool, breaker: Breaker, fresh: bool) -> None:
        self._pool = pool
        self._breaker = breaker
        self._fresh = fresh
        self._timeout: asyncio.Timeout | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        if not self._breaker.allow():
            raise StoreUnavailable("circuit breaker open")
        when = self._when = deadline.deadline(fresh=self._fresh)
        if when is not None:
            if deadline.remaining(when) == 0.0:
                m.DEPENDENCY_TIMEOUTS.labels("postgresql", "budget_spent").inc()
                raise StoreUnavailable("request budget spent")
            # One timeout for the pool wait and the statements: asyncpg's own acquire timeout runs
            # the wait in a task of its own (asyncio.wait_for), an extra trip through a busy event
            # loop for every call, even when a connection is free.
            self._timeout = asyncio.timeout_at(when)
            await self._timeout.__aenter__()
        _Connection.acquiring += 1
        try:
            self._conn = await self._pool.acquire()
        except BaseException as e:
            error: BaseException = e
            if self._timeout is not None:
                try:
                    await self._timeout.__aexit__(type(e), e, e.__traceback__)
                except TimeoutError as t:  # the deadline came while waiting for a connection
                    error = t
            if not isinstance(error, UNAVAILABLE):
                raise
            self._breaker.failure()
            if isinstance(error, TimeoutError):
                m.DEPENDENCY_TIMEOUTS.labels("postgresql", "connect").inc()
            raise StoreUnavailable(type(error).__name__) from error
        finally:
            _Connection.acquiring -= 1
        return self._conn

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._timeout is not None:
            try:
                await self._timeout.__aexit__(kind, exc, tb)
            except TimeoutError as e:  # the deadline came during a statement: it was cancelled
                m.DEPENDENCY_TIMEOUTS.labels("postgresql", "statement").inc()
                kind, exc = TimeoutError, e
        left = deadline.remaining(self._when)
        timeout = None if left is None else max(left, RELEASE_FLOOR)
        try:
            await self._pool.release(self._conn, timeout=timeout)
        except (*UNAVAILABLE, asyncpg.PostgresError) as e:
            # The connection could not be reset, so it was closed; the call itself is over.
            self._breaker.failure()
            if exc is None:
                return
            if not isinstance(exc, UNAVAILABLE):
                raise StoreUnavailable(type(e).__name__, maybe_applied=True) from e
        if exc is None or isinstance(exc, StoreError):
            self._breaker.success()
            return
        if isinstance(exc, UNAVAILABLE):
            self._breaker.failure()
            raise StoreUnavailable(type(exc).__name__, maybe_applied=True) from exc
        self._breaker.success()
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            raise ConstraintViolation(type(exc).__name__) from None


RELEASE_FLOOR = 0.1  # seconds: a reset (rolling back a transaction left open) takes one round trip


async def _reset(conn: asyncpg.Connection) -> None:
    """The pool's reset, beyond what the driver always does on release (roll back a transaction
    its caller left open, forget listeners): nothing. The driver's default — releasing session
    advisory locks, closing cursors, UNLISTEN, RESET ALL — is a round trip on every release (half
    the round trips of a batch of orders) for session state this store never leaves on a pooled
    connection: its advisory locks are transaction-scoped (the migration lock, its one session
    lock, is taken on a connection of its own), it listens on a connection of its own, it sets
    nothing and opens no cursor outside a transaction."""


class PostgresStore:
    kind = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        group_max: int = 64,
        group_inflight: int = 1,
        statement_timeout: float | None = None,
        breaker: Breaker | None = None,
        read_dsns: Sequence[str] = (),
        read_max_lag: float = 1.0,
    ) -> None:
        """``statement_timeout``: seconds, for the server (it stops a statement its client gave up
        on) and the driver (``command_timeout``); None for none (migrations). ``breaker``: the
        circuit breaker every call goes through (a lenient one by default). ``read_dsns``: read
        replicas for the reads the HTTP layer routes (``consistency``), ``read_max_lag`` seconds
        behind the primary at most."""
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._statement_timeout = statement_timeout
        self.breaker = breaker or Breaker("postgresql")
        for stage in ("connect", "statement", "budget_spent"):  # exported from the start, at 0
            m.DEPENDENCY_TIMEOUTS.labels("postgresql", stage)
        self._pool: asyncpg.Pool | None = None
        self.reads = (
            ReadReplicas(
                list(read_dsns),
                max_lag=read_max_lag,
                max_size=max_size,
                statement_timeout=statement_timeout,
                failures=self.breaker.threshold,
                cooldown=self.breaker.cooldown,
            )
            if read_dsns
            else None
        )
        self.group = GroupCommit(
            self._create_batch, max_batch=group_max, inflight=min(group_inflight, max_size), system="postgresql"
        )

    def _connection(self, *, fresh: bool = False) -> _Connection:
        return _Connection(self.pool, self.breaker, fresh)

    def pool_readings(self) -> list[tuple[tuple[str, ...], float]]:
        """The pool's connections by state, for the metrics (nothing while closed)."""
        if self._pool is None:
            return []
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        return [(("in_use",), size - idle), (("idle",), idle), (("max",), self._pool.get_max_size())]

    @staticmethod
    def waiting() -> list[tuple[tuple[str, ...], float]]:
        return [((), _Connection.acquiring)]

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    async def open(self, *, check_schema: bool = True) -> None:
        if self._pool is None:
            try:
                timeout = self._statement_timeout
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    command_timeout=timeout,
                    reset=_reset,
                    server_settings={}
                    if timeout is None
                    else {"statement_timeout": str(max(1, round(timeout * 1000)))},
                )
            except (OSError, asyncpg.PostgresError) as e:
                raise StoreError(f"cannot connect to PostgreSQL: {e}") from None
            if self.reads is not None:
                await self.reads.open(self._pool)
        if check_schema:
            async with self._connection() as conn:
                version = await _schema_version(conn)
            migrations.check_version("PostgreSQL", version, migrations.latest("postgres"))

    async def close(self) -> None:
        if self.reads is not None:
            await self.reads.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def migrate(self) -> list[str]:
        applied = []
        # A connection of its own, closed after: the migration lock is a session lock, which the
        # pool's light reset (``_reset``) would not release were the unlock below never to run.
        try:
            conn = await asyncpg.connect(self._dsn)
        except (OSError, asyncpg.PostgresError) as e:
            raise StoreError(f"cannot connect to PostgreSQL: {e}") from None
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
                    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                for m in migrations.load("postgres"):
                    async with conn.transaction():
                        done = await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", m.version)
                        if done is None:
                            await conn.execute(m.sql)
                            await conn.execute(
                                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                m.version,
                                m.name,
                            )
                            applied.append(f"{m.version:04d}_{m.name}")
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)
        finally:
            await conn.close()
        return applied

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=1.0) as conn:
                return bool(await conn.fetchval("SELECT 1", timeout=1.0) == 1)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, StoreError):
            return False

    async def create_orders(self, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
        return await self.group.submit(batch)

    async def _create_batch(self, batch: Sequence[NewOrder]) -> list[CreateOutcome]:
        # A budget of its own: the batch is written for many requests, not the one that started it.
        async with self._connection(fresh=True) as conn:
            outcomes = await orders.create_batch(conn, batch)
            await self._written(conn)
            return outcomes

    async def _written(self, conn: asyncpg.Connection) -> None:
        """With read replicas: the primary's position after a write committed, for the client to
        read its writes with (one round trip per write transaction, only then). The write has
        committed whatever happens here, so a failure to read the position fails nothing: the
        position just does not move (a single-row read that misses on a replica still asks the
        primary)."""
        if self.reads is not None:
            try:
                self.reads.note_written(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
            except (*UNAVAILABLE, asyncpg.PostgresError):
                pass

    def written_position(self) -> str | None:
        """The highest position this process's writes committed at (None without replicas)."""
        return None if self.reads is None else self.reads.written_position()

    async def _read(self, query: Callable[..., Awaitable[T]], *args: Any, missing_is_stale: bool = False) -> T:
        """A read the HTTP layer let go to a replica (``READ_AFTER``), on one that may serve it;
        on the primary when none may, when it fails there, or — ``missing_is_stale`` — when the
        replica has no such row (it may be newer than what the replica replayed)."""
        after = READ_AFTER.get()
        if self.reads is not None and after is not None and (replica := self.reads.pick(after)) is not None:
            assert replica.pool is not None
            try:
                async with _Connection(replica.pool, replica.breaker, False) as conn:
                    result = await query(conn, *args)
            except (StoreUnavailable, asyncpg.PostgresError):
                replica.lost()
            else:
                if result is not None or not missing_is_stale:
                    m.DB_READS.labels("replica").inc()
                    return result
        if self.reads is not None:
            m.DB_READS.labels("primary").inc()
        async with self._connection() as conn:
            return await query(conn, *args)

    async def get_order(self, order_id: str) -> Order | None:
        return await self._read(orders.get_order, order_id, missing_is_stale=True)

    async def list_orders(self, customer_id: str, limit: int, before: str | None) -> list[Order]:
        return await self._read(orders.list_orders, customer_id, limit, before)

    async def change_order(self, order_id: str, plan: Callable[[Order], TransitionPlan]) -> TransitionPlan | None:
        async with self._connection() as conn:
            done = await lifecycle.change_order(conn, order_id, plan)
            await self._written(conn)
            return done

    async def find_payment(self, event_id: str) -> PaymentRecord | None:
        async with self._connection() as conn:
            return await lifecycle.find_payment(conn, event_id)

    async def expire_orders(
        self, created_before: datetime, limit: int, plan: Callable[[Order], TransitionPlan]
    ) -> list[Order]:
        async with self._connection() as conn:
            return await lifecycle.expire_orders(conn, created_before, limit, plan)

    async def put_api_key(self, record: ApiKeyRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO api_keys (prefix, key_hash, name, roles, created_at) VALUES ($1, $2, $3, $4, $5)",
                record.prefix,
                record.key_hash,
                record.name,
                ",".join(record.roles),
                record.created_at,
            )

    async def get_api_key(self, prefix: str) -> ApiKeyRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE prefix = $1", prefix)
        return None if row is None else _api_key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        async with self._connection() as conn:
            rows = await conn.fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at")
        return [_api_key(r) for r in rows]

    async def revoke_api_key(self, prefix: str) -> bool:
        async with self._connection() as conn:
            status = await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL", prefix
            )
        return bool(status.endswith(" 1"))

    async def reconcile(self) -> list[Discrepancy]:
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            # One snapshot for all three checks, so they describe the same moment.
            found = [
                Discrepancy("missing_events", str(r[0]), f"last_sequence {r[1]}, {r[2]} events up to sequence {r[3]}")
                for r in await conn.fetch(reconcile_sql.MISSING_EVENTS)
            ]
            found += [
                Discrepancy("orphan_event", str(r[0]), f"event of missing order {r[1]}")
                for r in await conn.fetch(reconcile_sql.ORPHAN_EVENTS)
            ]
            found += [
                Discrepancy("reserved_stock", r[0], f"reserved {r[1]}, unpaid orders hold {r[2]}")
                for r in await conn.fetch(reconcile_sql.RESERVED_STOCK)
            ]
            return found

    async def events_after(self, position: int, limit: int) -> list[FeedEvent]:
        async with self._connection() as conn:
            return await lifecycle.events_after(conn, position, limit)

    async def find_idempotency(self, principal: str, key: str) -> IdempotencyRecord | None:
        async with self._connection() as conn:
            return await orders.find_idempotency(conn, principal, key)

    async def put_product(self, spec: ProductSpec) -> tuple[Product, bool]:
        async with self._connection() as conn:
            written = await catalog.put_product(conn, spec)
            await self._written(conn)
            return written

    async def get_product(self, sku: str) -> Product | None:
        return await self._read(catalog.get_product, sku, missing_is_stale=True)

    async def put_coupon(self, spec: CouponSpec) -> tuple[Coupon, bool]:
        async with self._connection() as conn:
            written = await catalog.put_coupon(conn, spec)
            await self._written(conn)
            return written

    async def get_coupon(self, code: str) -> Coupon | None:
        return await self._read(catalog.get_coupon, code, missing_is_stale=True)

    async def put_promotion(self, spec: PromotionSpec) -> tuple[Promotion, bool]:
        async with self._connection() as conn:
            written = await catalog.put_promotion(conn, spec)
            await self._written(conn)
            return written

    async def get_promotion(self, promotion_id: str) -> Promotion | None:
        return await self._read(catalog.get_promotion, promotion_id, missing_is_stale=True)

    async def put_restrictions(self, spec: RestrictionsSpec) -> tuple[Restrictions, bool]:
        async with self._connection() as conn:
            written = await catalog.put_restrictions(conn, spec)
            await self._written(conn)
            return written

    async def get_restrictions(self, customer_id: str) -> Restrictions | None:
        return await self._read(catalog.get_restrictions, customer_id, missing_is_stale=True)

    async def list_products(self, after: str | None, limit: int) -> list[Product]:
        return await self._read(catalog.list_products, after, limit)

    async def list_coupons(self, after: str | None, limit: int) -> list[Coupon]:
        return await self._read(catalog.list_coupons, after, limit)

    async def list_promotions(self, after: str | None, limit: int) -> list[Promotion]:
        return await self._read(catalog.list_promotions, after, limit)

    async def catalog_since(self, version: int) -> CatalogChanges:
        async with self._connection() as conn:
            return await catalog.catalog_since(conn, version)

    # -- relay ----------------------------------------------------------------------------------

    async def claim_outbox(self, limit: int, lease_seconds: float) -> list[OutboxMessage]:
        async with self._connection() as conn:
            return await outbox.claim(conn, limit, lease_seconds)

    async def mark_published(self, published: list[tuple[int, str]]) -> None:
        async with self._connection() as conn:
            return await outbox.mark_published(conn, published)

    async def mark_failed(self, failed: list[tuple[int, str]], max_attempts: int, delays: list[float]) -> None:
        async with self._connection() as conn:
            return await outbox.mark_failed(conn, failed, max_attempts, delays)

    async def dead_events(self, limit: int) -> list[DeadEvent]:
        async with self._connection() as conn:
            return await outbox.dead_events(conn, limit)

    async def replay_dead(self, event_id: str) -> bool:
        async with self._connection() as conn:
            return await outbox.replay_dead(conn, event_id)

    async def outbox_stats(self) -> OutboxStats:
        async with self._connection() as conn:
            return await outbox.stats(conn)

    async def published_refs(self, limit: int, before: int | None = None) -> list[tuple[int, str]]:
        async with self._connection() as conn:
            return await outbox.published_refs(conn, limit, before)

    async def published_count(self) -> int:
        async with self._connection() as conn:
            return await outbox.published_count(conn)

    async def renew_outbox(self, positions: list[int], lease_seconds: float) -> None:
        async with self._connection() as conn:
            return await outbox.renew(conn, positions, lease_seconds)

    async def release_outbox(self, positions: list[int]) -> None:
        async with self._connection() as conn:
            return await outbox.release(conn, positions)

    async def unpublish(self, positions: list[int]) -> None:
        async with self._connection() as conn:
            return await outbox.unpublish(conn, positions)

    async def listen_outbox(self, wake: Callable[[], None]) -> Callable[[], Awaitable[None]] | None:
        # A connection of its own, outside the pool: it holds the LISTEN for as long as it lives.
        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener("orderfast_outbox", lambda *_: wake())
        close: Callable[[], Awaitable[None]] = conn.close
        return close


_KEY_COLUMNS = "prefix, key_hash, name, roles, created_at, revoked_at"


def _api_key(r: Any) -> ApiKeyRecord:
    return ApiKeyRecord(r[0], bytes(r[1]), r[2], tuple(x for x in r[3].split(",") if x), r[4], r[5])


async def _schema_version(conn: asyncpg.Connection) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
