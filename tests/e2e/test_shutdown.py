"""SIGTERM under load, as a rollout stops a pod: readiness turns at once, nothing already sent fails,
every acknowledged order is in the database, and the server exits within its grace period."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import order_body, start_server

DRAIN_DELAY = 2.0
SHUTDOWN_TIMEOUT = 10.0
CLIENTS = 12
SKU = "DRAIN-1"


@dataclass
class Sent:
    at: float
    status: int | None = None  # None: the request failed without an answer
    order_id: str | None = None
    closing: bool = False
    error: str = ""


def test_sigterm_under_load_drains_without_failing_a_request(
    tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str]
) -> None:
    env = {"ORDERFAST_DRAIN_DELAY": str(DRAIN_DELAY), "ORDERFAST_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)}
    server = start_server(tmp_path_factory, "postgres", pg_database_factory, env)
    assert server.proc is not None
    with server.client("ops", "admin") as admin:  # stock that no run of this test can exhaust
        product = {"name": "Drain test", "price": "1.00", "currency": "USD", "stock": 1_000_000_000}
        assert admin.put(f"/v1/products/{SKU}", json=product).status_code == 201
    sent: list[Sent] = []
    readiness: list[tuple[float, int]] = []
    done = threading.Event()
    lock = threading.Lock()

    def customer(n: int) -> None:
        # Kept-alive connections, as a real client pool holds them.
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            c.headers["authorization"] = f"Bearer {server.token(f'drain-{n}')}"
            while not done.is_set():
                s = Sent(time.monotonic())
                try:
                    r = c.post(
                        "/v1/orders",
                        json=order_body((SKU, 1)),
                        headers={"idempotency-key": uuid.uuid4().hex},
                    )
                    s.status, s.closing = r.status_code, r.headers.get("connection") == "close"
                    if r.status_code == 201:
                        s.order_id = r.json()["id"]
                except httpx.TransportError as e:
                    s.error = repr(e)
                with lock:
                    sent.append(s)

    def prober() -> None:
        while not done.is_set():
            try:
                status = httpx.get(f"{server.base_url}/readyz", timeout=1).status_code
            except httpx.TransportError:
                status = 0  # the listener is closed
            readiness.append((time.monotonic(), status))
            time.sleep(0.01)  # the probe's period, not a synchronisation

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(CLIENTS)]
    threads.append(threading.Thread(target=prober))
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while sum(s.status == 201 for s in list(sent)) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        terminated_at = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        exit_code = server.proc.wait(timeout=DRAIN_DELAY + SHUTDOWN_TIMEOUT + 5)
        exited_at = time.monotonic()
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)
        server.stop()

    log = server.log_path.read_text()
    assert exit_code == 0, log
    assert exited_at - terminated_at < DRAIN_DELAY + SHUTDOWN_TIMEOUT, "within the grace period"
    # Readiness turned at once, and the listener stayed open for the drain delay.
    turned = next(t for t, status in readiness if t > terminated_at and status != 200)
    assert turned - terminated_at < 0.5
    assert next(status for t, status in readiness if t > terminated_at and status != 200) == 503
    closed = next((t for t, status in readiness if status == 0 and t > terminated_at), exited_at)
    assert closed - terminated_at >= DRAIN_DELAY - 0.2, "requests were served during the drain"
    # Nothing sent before the listener closed failed: no reset, no 5xx.
    before = [s for s in sent if s.at < terminated_at + DRAIN_DELAY - 0.2]
    failed = [s for s in before if s.status != 201]
    assert len(before) > 300 and not failed, failed[:5]
    during = [s for s in before if s.at > turned]
    assert during and all(s.closing for s in during), "answers during the drain ask clients to reconnect"
    # Every acknowledged order, even one answered in the last moments, is in the database.
    acknowledged = {s.order_id for s in sent if s.order_id}

    async def stored() -> set[str]:
        conn = await asyncpg.connect(server.env["ORDERFAST_DATABASE_URL"])
        try:
            rows = await conn.fetch("SELECT id::text FROM orders WHERE id = ANY($1::uuid[])", list(acknowledged))
        finally:
            await conn.close()
        return {r[0] for r in rows}

    assert asyncio.run(stored()) == acknowledged
    assert '"SIGTERM: draining' in log and "Traceback" not in log
