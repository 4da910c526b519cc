"""Kill -9 the whole server in the middle of a burst of orders, then audit the database directly:
every acknowledged order is there, and every order there is whole (lines, outbox event,
idempotency record, stock reserved) — all of a transaction or none of it."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from tests.e2e.conftest import Server, order_body
from tests.faults.audit import INITIAL_STOCK, SKU, assert_whole, snapshot


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
            f"/v1/products/{SKU}",
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
                        content=orjson.dumps(order_body((SKU, 1 + n % 3))),
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

    assert_whole(snapshot(server.env), acknowledged)
