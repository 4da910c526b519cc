"""The peers of bench/harness.py do what their ratios assume. The FastAPI peer keeps orderfast's
create-order contract, or its ratios mean nothing; the featureless batcher commits what it acknowledges.

orderfast and the FastAPI peer run against one real PostgreSQL database with orderfast's schema: each
creates, replays, refuses a reused key and a missing key, and refuses an order with too little stock;
their answers have the same status codes and the same document shape.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from orderfast.http.auth import mint_token
from tests.conftest import JWT_SECRET
from tests.e2e.conftest import Server, free_port

ROOT = Path(__file__).resolve().parents[2]


async def seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO products (sku, name, currency, price_minor, stock, version, updated_at) VALUES "
            "('P-1', 'One', 'USD', 1234, 100, nextval('catalog_version'), now()), "
            "('P-2', 'Two', 'USD', 250, 1, nextval('catalog_version'), now())"
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str]) -> Iterator[list[str]]:
    dsn = pg_database_factory()
    server = Server(tmp_path_factory.mktemp("peer"), {"ORDERFAST_DATABASE_URL": dsn}, workers=1)
    server.cli("migrate")
    asyncio.run(seed(dsn))
    server.start()
    port = free_port()
    peer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.peers.fastapi_peer:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "PEER_DATABASE_URL": dsn, "PEER_JWT_SECRET": JWT_SECRET},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # poll (bounded) until the peer answers
            assert peer.poll() is None, "the peer exited"
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the peer did not start"
                time.sleep(0.05)
        yield [server.base_url, f"http://127.0.0.1:{port}"]
    finally:
        peer.terminate()
        peer.wait(timeout=15)
        server.stop()


def test_the_peer_answers_create_order_as_orderfast_does(both: list[str]) -> None:
    answers = []
    for n, base in enumerate(both):
        token = mint_token(JWT_SECRET, f"peer-user-{n}")
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {token}"}) as c:
            body = {"currency": "USD", "items": [{"sku": "P-1", "quantity": 2}]}
            created = c.post("/v1/orders", json=body, headers={"idempotency-key": "k1"})
            replay = c.post("/v1/orders", json=body, headers={"idempotency-key": "k1"})
            reused = c.post("/v1/orders", json={**body, "currency": "USD", "items": [{"sku": "P-1", "quantity": 3}]},
                            headers={"idempotency-key": "k1"})  # fmt: skip
            missing = c.post("/v1/orders", json=body)
            sold_out = c.post("/v1/orders", json={"currency": "USD", "items": [{"sku": "P-2", "quantity": 2}]},
                              headers={"idempotency-key": "k2"})  # fmt: skip
            fetched = c.get(f"/v1/orders/{created.json()['id']}")
            unauthenticated = httpx.post(base + "/v1/orders", json=body, headers={"idempotency-key": "k3"})
        assert replay.content == created.content and replay.headers["idempotent-replayed"] == "true"
        assert fetched.json()["total"] == created.json()["total"] == "24.68"
        answers.append(
            (
                created.status_code,
                sorted(created.json()),
                sorted(created.json()["lines"][0]),
                reused.status_code,
                missing.status_code,
                sold_out.status_code,
                unauthenticated.status_code,
            )
        )
    orderfast, peer = answers
    assert orderfast == peer
    assert orderfast[0] == 201 and orderfast[3:] == (422, 400, 409, 401)


def test_the_featureless_batcher_commits_each_order_once_before_answering(
    pg_database_factory: Callable[[], str],
) -> None:
    # The floor of bench/harness.py: whatever it answers 201 is a committed row, once; concurrent
    # requests share batches (otherwise it would not be the group-committing floor it claims to be).
    dsn = pg_database_factory()
    port = free_port()
    peer = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--port", str(port),
         "--workers", "1", "--no-ws", "bench.peers.batcher:app"],
        env={**os.environ, "PEER_DATABASE_URL": dsn},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # poll (bounded) until the peer answers
            assert peer.poll() is None, "the peer exited"
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the peer did not start"
                time.sleep(0.05)

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=50)) as c:
                return await asyncio.gather(
                    *(c.post("/v1/orders", json={"n": n, "items": [{"sku": "W-1", "quantity": 1}]}) for n in range(200))
                )

        answers = asyncio.run(burst())
        assert [a.status_code for a in answers] == [201] * 200
        ids = {a.json()["id"] for a in answers}
        assert len(ids) == 200

        async def stored() -> tuple[set[str], int, int]:
            conn = await asyncpg.connect(dsn)
            try:
                rows = await conn.fetch("SELECT id::text, body, created_at FROM floor_orders")
            finally:
                await conn.close()
            # now() is the transaction's start: one value per batch.
            return {r[0] for r in rows}, len({r[1] for r in rows}), len({r[2] for r in rows})

        rows, bodies, batches = asyncio.run(stored())
        assert rows == ids and bodies == 200
        assert batches < 200, "concurrent requests were written in shared batches"
    finally:
        peer.terminate()
        peer.wait(timeout=15)
