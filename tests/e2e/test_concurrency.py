"""Concurrent clients against several worker processes: no duplicate orders, no oversell."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson

from tests.e2e.conftest import Server, order_body
from tests.e2e.test_orders import new_sku

BURST = 16


def burst(server: Server, requests: list[tuple[str, str, bytes]]) -> list[httpx.Response]:
    """Sends (customer, key, body) requests at once: all threads wait on a barrier, then fire."""
    barrier = threading.Barrier(len(requests))

    def send(req: tuple[str, str, bytes]) -> httpx.Response:
        customer, key, body = req
        with server.client(customer) as c:
            c.get("/livez")  # connect before the barrier so the requests really overlap
            barrier.wait()
            return c.post(
                "/v1/orders",
                content=body,
                headers={"content-type": "application/json", "idempotency-key": key},
            )

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def test_same_key_burst_creates_exactly_one_order(server: Server) -> None:
    sku = new_sku(server, stock=1000)
    customer = f"burst-{uuid.uuid4().hex[:8]}"
    body = orjson.dumps(order_body((sku, 1)))
    responses = burst(server, [(customer, "one-key", body)] * BURST)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}, codes
    created = [r for r in responses if r.status_code == 201]
    assert created, codes
    assert len({r.content for r in created}) == 1, "every 201 is the same order, byte for byte"
    assert sum("idempotent-replayed" not in r.headers for r in created) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"] == "/problems/idempotency-key-in-use"
    with server.client(customer) as c:
        assert len(c.get("/v1/orders").json()["items"]) == 1
        assert c.get(f"/v1/products/{sku}").json()["stock"] == 999


def test_little_stock_is_never_oversold(server: Server) -> None:
    stock = 5
    sku = new_sku(server, stock=stock)
    body = orjson.dumps(order_body((sku, 1)))
    requests = [(f"buyer-{i}-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex, body) for i in range(BURST)]
    responses = burst(server, requests)
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * stock + [409] * (BURST - stock), codes
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"] == "/problems/out-of-stock"
    with server.client("auditor", "admin") as admin:
        assert admin.get(f"/v1/products/{sku}").json()["stock"] == 0
