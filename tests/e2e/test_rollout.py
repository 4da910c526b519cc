"""A rolling update under load, as k8s/ describes it (maxUnavailable 0, maxSurge 1), on this machine:
orderfast instances behind a real HAProxy that health-checks /readyz, each old instance replaced by a
new one, one at a time, while clients keep creating orders through the balancer. Zero failed
requests, zero lost orders, no order created twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from orderfast.http.auth import mint_token
from tests.conftest import JWT_SECRET
from tests.e2e.cluster import DRAIN_DELAY, Balancer, Instance
from tests.e2e.conftest import free_port, order_body

CLIENTS = 8
SKU = "ROLLOUT-1"


@dataclass
class Attempt:
    key: str
    status: int | None
    order_id: str | None
    error: str = ""


@pytest.fixture
def database(pg_database_factory: Callable[[], str], tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    dsn = pg_database_factory()
    env = {
        **os.environ,
        "ORDERFAST_DATABASE_URL": dsn,
        "ORDERFAST_DATA_DIR": str(tmp_path / "data"),
        "ORDERFAST_JWT_SECRET": JWT_SECRET,
        "ORDERFAST_RATELIMIT_USER": "100000/1",
        "ORDERFAST_RATELIMIT_IP": "1000000/1",
        "ORDERFAST_DRAIN_DELAY": str(DRAIN_DELAY),
    }
    done = subprocess.run(
        [sys.executable, "-m", "orderfast", "migrate", "--seed-demo"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    yield dsn, env


def test_rolling_update_behind_haproxy_fails_no_request_and_loses_no_order(
    database: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    dsn, env = database
    slots = [free_port() for _ in range(4)]
    old = [Instance(slots[0], env, tmp_path / "s0.log"), Instance(slots[1], env, tmp_path / "s1.log")]
    for instance in old:
        instance.wait_ready()
    # Stock that no run of this test can exhaust (the demo's would run out on a slow machine).
    admin = mint_token(JWT_SECRET, "ops", ("admin",))
    product = {"name": "Rollout test", "price": "1.00", "currency": "USD", "stock": 1_000_000_000}
    put = httpx.put(
        f"http://127.0.0.1:{slots[0]}/v1/products/{SKU}", json=product, headers={"authorization": f"Bearer {admin}"}
    )
    assert put.status_code == 201, put.text
    balancer = Balancer(tmp_path, slots)
    attempts: list[Attempt] = []
    done = threading.Event()
    lock = threading.Lock()
    new: list[Instance] = []

    def customer(n: int) -> None:
        token = mint_token(JWT_SECRET, f"rollout-{n}", ())
        with httpx.Client(base_url=f"http://127.0.0.1:{balancer.port}", timeout=30) as c:
            c.headers["authorization"] = f"Bearer {token}"
            while not done.is_set():
                key = uuid.uuid4().hex
                try:
                    r = c.post("/v1/orders", json=order_body((SKU, 1)), headers={"idempotency-key": key})
                    attempt = Attempt(key, r.status_code, r.json().get("id") if r.status_code == 201 else None)
                except httpx.TransportError as e:
                    attempt = Attempt(key, None, None, repr(e))
                with lock:
                    attempts.append(attempt)

    def created() -> int:
        with lock:
            return sum(a.status == 201 for a in attempts)

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(CLIENTS)]
    try:
        balancer.wait("s0", "UP")
        balancer.wait("s1", "UP")
        for t in threads:
            t.start()
        # The rolling update: surge one new instance, wait until the balancer sends it traffic,
        # then retire one old instance (it drains: the balancer marks it DOWN on its first 503).
        for i, retiring in enumerate(old):
            floor = created() + 100
            deadline = time.monotonic() + 30
            while created() < floor and time.monotonic() < deadline:
                time.sleep(0.01)
            surge = Instance(slots[2 + i], env, tmp_path / f"s{2 + i}.log")
            new.append(surge)
            surge.wait_ready()
            balancer.wait(f"s{2 + i}", "UP")
            assert retiring.terminate() == 0, retiring.log.read_text()
            balancer.wait(f"s{i}", "DOWN")
        floor = created() + 100
        deadline = time.monotonic() + 30
        while created() < floor and time.monotonic() < deadline:
            time.sleep(0.01)
        served = balancer.served()
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)
        balancer.stop()
        for instance in old + new:
            if instance.proc.poll() is None:
                instance.proc.send_signal(signal.SIGINT)
                instance.proc.wait(timeout=30)

    assert all(served[f"s{i}"] > 0 for i in range(4)), served  # every instance took its share
    failed = [a for a in attempts if a.status != 201]
    assert len(attempts) > 300 and not failed, failed[:5]
    ids = [a.order_id for a in attempts]

    async def stored() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT id::text FROM orders")
        finally:
            await conn.close()
        return [r[0] for r in rows]

    in_db = asyncio.run(stored())
    assert sorted(in_db) == sorted(ids), "every acknowledged order is stored, and nothing else"
    assert len(set(in_db)) == len(in_db) == len(attempts), "no order created twice"
