"""Kill -9 the whole server in the middle of a burst of orders, then audit the database directly:
every acknowledged order is there, and every order there is whole (lines, outbox event,
idempotency record, stock reserved) — all of a transaction or none of it."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tests.e2e.conftest import Server, order_body

INITIAL_STOCK = 1_000_000
AUDIT = {
    "orders": "SELECT id::text AS id FROM orders",
    "lines": "SELECT order_id::text AS id, count(*) AS n, sum(quantity) AS q FROM order_lines GROUP BY order_id",
    "events": "SELECT aggregate_id::text AS id FROM outbox WHERE event_type = 'order.created'",
    "keys": "SELECT order_id::text AS id FROM idempotency_keys",
    "stock": "SELECT stock FROM products WHERE sku = 'CRASH-1'",
}


def audit(server: Server) -> dict[str, list[tuple[Any, ...]]]:
    url = server.env.get("ORDERFAST_DATABASE_URL")
    if url is None:
        con = sqlite3.connect(Path(server.env["ORDERFAST_DATA_DIR"]) / "orderfast.db")
        try:
            return {k: con.execute(q.replace("::text", "")).fetchall() for k, q in AUDIT.items()}
        finally:
            con.close()

    async def run() -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(url)
        try:
            return {k: [tuple(r) for r in await conn.fetch(q)] for k, q in AUDIT.items()}
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_sigkill_mid_burst_loses_no_acknowledged_order_and_leaves_no_partial_one(
    kind: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str] = {}
    if kind == "postgres":
        factory: Callable[[], str] = request.getfixturevalue("pg_database_factory")
        env["ORDERFAST_DATABASE_URL"] = factory()
    server = Server(tmp_path_factory.mktemp(f"crash-{kind}"), env, workers=2)
    server.start()
    with server.client("admin", "admin") as admin:
        admin.put(
            "/v1/products/CRASH-1",
            json={"name": "c", "price": "1.00", "currency": "USD", "stock": INITIAL_STOCK},
        ).raise_for_status()
    acknowledged: list[str] = []
    enough = threading.Event()
    lock = threading.Lock()

    def hammer(n: int) -> None:
        with server.client(f"crash-{n}") as c:
            while True:
                try:
                    r = c.post(
                        "/v1/orders",
                        content=orjson.dumps(order_body(("CRASH-1", 1 + n % 3))),
                        headers={"content-type": "application/json", "idempotency-key": uuid.uuid4().hex},
                    )
                except httpx.TransportError:
                    return  # the server is gone
                if r.status_code == 201:
                    with lock:
                        acknowledged.append(r.json()["id"])
                        if len(acknowledged) >= 60:
                            enough.set()

    assert server.proc is not None
    with ThreadPoolExecutor(8) as pool:
        for n in range(8):
            pool.submit(hammer, n)
        assert enough.wait(timeout=60), "the server acknowledged too few orders"
        # SIGKILL every process of the server at once: no shutdown hooks, no flushing.
        pgid = os.getpgid(server.proc.pid)
        assert pgid != os.getpgid(0), "never kill the test runner's own group"
        os.killpg(pgid, signal.SIGKILL)
        server.proc.wait()

    db = audit(server)
    orders = {r[0] for r in db["orders"]}
    lines = {r[0]: (r[1], r[2]) for r in db["lines"]}
    assert set(acknowledged) <= orders, "an acknowledged order was lost"
    assert set(lines) == orders, "an order without lines, or lines without an order"
    assert {r[0] for r in db["events"]} == orders, "every order has exactly its outbox event"
    assert sorted(r[0] for r in db["keys"]) == sorted(orders), "one idempotency record per order"
    reserved = sum(q for _, q in lines.values())
    assert db["stock"][0][0] == INITIAL_STOCK - reserved, "stock reserved exactly for the orders that exist"
