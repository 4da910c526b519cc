"""The database audit after a fault: read the tables directly (not through the service that was just
broken) and check that every order is whole — all of its transaction or none of it — and that stock is
conserved. Shared by ``tests/e2e/test_crash.py`` and the fault suite."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

SKU = "CRASH-1"
INITIAL_STOCK = 1_000_000
AUDIT = {
    "orders": "SELECT id::text AS id, status FROM orders",
    "lines": "SELECT order_id::text AS id, count(*) AS n, sum(quantity) AS q FROM order_lines GROUP BY order_id",
    "events": "SELECT aggregate_id::text AS id FROM outbox WHERE event_type = 'order.created'",
    "keys": "SELECT principal, key, order_id::text AS id, response_body FROM idempotency_keys",
    "product": f"SELECT stock, reserved FROM products WHERE sku = '{SKU}'",
}


@dataclass(frozen=True)
class Snapshot:
    """What the database holds: orders (id → status), their lines (id → (count, quantity)), the ids of
    their ``order.created`` events, the idempotency records ((principal, key) → (order id, body)), and
    the audited product's stock and reservation."""

    orders: Mapping[str, str]
    lines: Mapping[str, tuple[int, int]]
    events: list[str]
    keys: Mapping[tuple[str, str], tuple[str, bytes]]
    stock: int
    reserved: int


def snapshot(env: Mapping[str, str]) -> Snapshot:
    """The audit of the database an orderfast process with ``env`` uses (PostgreSQL, else its SQLite file)."""
    url = env.get("ORDERFAST_DATABASE_URL")
    rows: dict[str, list[tuple[Any, ...]]]
    if url is None:
        con = sqlite3.connect(Path(env["ORDERFAST_DATA_DIR"]) / "orderfast.db")
        try:
            rows = {k: con.execute(q.replace("::text", "")).fetchall() for k, q in AUDIT.items()}
        finally:
            con.close()
    else:

        async def run() -> dict[str, list[tuple[Any, ...]]]:
            conn = await asyncpg.connect(url, timeout=10)
            try:
                return {k: [tuple(r) for r in await conn.fetch(q)] for k, q in AUDIT.items()}
            finally:
                await conn.close()

        rows = asyncio.run(run())
    ((stock, reserved),) = rows["product"]
    return Snapshot(
        orders={r[0]: r[1] for r in rows["orders"]},
        lines={r[0]: (r[1], r[2]) for r in rows["lines"]},
        events=[r[0] for r in rows["events"]],
        keys={(r[0], r[1]): (r[2], bytes(r[3])) for r in rows["keys"]},
        stock=stock,
        reserved=reserved,
    )


_OTHER_SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def wait_quiet(env: Mapping[str, str], *, timeout: float = 30) -> None:
    """Until no other session is connected to the database (PostgreSQL; SQLite needs no wait). A
    backend whose client was killed runs its statement to the end — a create in flight at a SIGKILL may
    commit after the client died — and exits only when it finds the client gone: audit after that."""
    url = env.get("ORDERFAST_DATABASE_URL")
    if url is None:
        return

    async def others() -> int:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return int(await conn.fetchval(_OTHER_SESSIONS))
        finally:
            await conn.close()

    deadline = time.monotonic() + timeout
    while asyncio.run(others()):
        assert time.monotonic() < deadline, "sessions of the killed processes still open"
        time.sleep(0.05)


def assert_whole(db: Snapshot, acknowledged: Iterable[str], *, initial_stock: int = INITIAL_STOCK) -> None:
    """No acknowledged order lost; every stored order whole (lines, exactly one ``order.created``
    event, exactly one idempotency record); stock conserved: what left the shelf is what the orders
    hold, and ``reserved`` is exactly the quantity of the orders awaiting payment."""
    orders = set(db.orders)
    assert set(acknowledged) <= orders, "an acknowledged order was lost"
    assert set(db.lines) == orders, "an order without lines, or lines without an order"
    assert sorted(db.events) == sorted(orders), "every order has exactly its outbox event"
    assert sorted(oid for oid, _ in db.keys.values()) == sorted(orders), "one idempotency record per order"
    taken = sum(q for _, q in db.lines.values())
    assert db.stock == initial_stock - taken, "stock reserved exactly for the orders that exist"
    unpaid = sum(q for oid, (_, q) in db.lines.items() if db.orders[oid] == "PENDING_PAYMENT")
    assert db.reserved == unpaid, "reserved is the quantity of the unpaid orders"
