"""Three orderfast instances — separate `orderfast serve` processes on their own ports, one PostgreSQL,
one Redis — behind a real HAProxy, as a deployment of several replicas runs them. Under concurrent
load spread over all of them: one idempotency key creates one order whichever instances it reaches,
and every instance replays it byte for byte; the shared rate limit is one quota, not one per
instance; a catalog change reaches every instance's snapshot within the documented bound; and the
sweepers and relays that every instance runs never apply an expiry or publish an event twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from orderfast.http.auth import mint_token
from tests.conftest import JWT_SECRET
from tests.e2e.cluster import Balancer, Instance
from tests.e2e.conftest import free_port, order_body

INSTANCES = 3
QUOTA = 60  # per user, across the whole cluster (Redis), for the hour
CATALOG_REFRESH = 0.5  # the default: README says every worker prices a change within a second
PAYMENT_TIMEOUT = 3.0
SWEEP_INTERVAL = 0.2
PER_CUSTOMER = 20  # create-orders per load client


@dataclass
class Cluster:
    dsn: str
    instances: list[Instance]
    balancer: Balancer
    redis_url: str
    stream: str

    def url(self, n: int | None = None) -> str:
        """Instance ``n`` directly, or the balancer."""
        port = self.balancer.port if n is None else self.instances[n].port
        return f"http://127.0.0.1:{port}"

    def client(self, sub: str, *roles: str, n: int | None = None) -> httpx.Client:
        token = mint_token(JWT_SECRET, sub, roles)
        return httpx.Client(base_url=self.url(n), headers={"authorization": f"Bearer {token}"}, timeout=30)

    def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.dsn)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def cluster(
    pg_database_factory: Callable[[], str], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("instances")
    dsn = pg_database_factory()
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        "ORDERFAST_DATABASE_URL": dsn,
        "ORDERFAST_DATA_DIR": str(workdir / "data"),
        "ORDERFAST_JWT_SECRET": JWT_SECRET,
        "ORDERFAST_REDIS_URL": redis_url,
        "ORDERFAST_RATELIMIT_USER": f"{QUOTA}/3600",
        "ORDERFAST_RATELIMIT_USER_BURST": str(QUOTA),
        "ORDERFAST_RATELIMIT_IP": "1000000/1",
        "ORDERFAST_RELAY_IN_PROCESS": "true",  # a relay in every instance, all on one outbox
        "ORDERFAST_STREAM_PREFIX": prefix,
        "ORDERFAST_CATALOG_REFRESH": str(CATALOG_REFRESH),
        "ORDERFAST_PAYMENT_TIMEOUT": str(PAYMENT_TIMEOUT),
        "ORDERFAST_SWEEP_INTERVAL": str(SWEEP_INTERVAL),  # a sweeper in every instance too
    }
    done = subprocess.run(
        [sys.executable, "-m", "orderfast", "migrate", "--seed-demo"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    instances = [Instance(free_port(), env, workdir / f"i{n}.log") for n in range(INSTANCES)]
    balancer: Balancer | None = None
    try:
        for instance in instances:
            instance.wait_ready()
        balancer = Balancer(workdir, [i.port for i in instances])
        for n in range(INSTANCES):
            balancer.wait(f"s{n}", "UP")
        yield Cluster(dsn, instances, balancer, redis_url, f"{prefix}order")
    finally:
        if balancer is not None:
            balancer.stop()
        for instance in instances:
            if instance.proc.poll() is None:
                instance.proc.send_signal(signal.SIGINT)
                instance.proc.wait(timeout=30)
        redis.Redis.from_url(redis_url).delete(f"{prefix}order")


def put_product(cluster: Cluster, sku: str, price: str, stock: int = 1_000_000, n: int = 0) -> None:
    with cluster.client(f"admin-{uuid.uuid4().hex[:8]}", "admin", n=n) as c:
        r = c.put(f"/v1/products/{sku}", json={"name": sku, "price": price, "currency": "USD", "stock": stock})
    assert r.status_code in (200, 201), r.text


def race(cluster: Cluster, user: str, key: str, body: dict[str, Any]) -> list[httpx.Response]:
    """Two requests with one key to each instance, released at once."""
    targets = [n for n in range(INSTANCES) for _ in range(2)]
    start = threading.Barrier(len(targets))
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        with cluster.client(user, n=n) as c:
            start.wait()
            r = c.post("/v1/orders", json=body, headers={"idempotency-key": key})
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=send, args=(n,)) for n in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == len(targets)
    return answers


def test_one_key_sent_to_every_instance_at_once_creates_one_order(cluster: Cluster) -> None:
    sku = f"IDEM-{uuid.uuid4().hex[:6]}"
    put_product(cluster, sku, "3.00")
    for round_ in range(5):
        user, key = f"idem-{round_}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        body = order_body((sku, 2))
        answers = race(cluster, user, key, body)
        statuses = Counter(r.status_code for r in answers)
        assert set(statuses) <= {201, 409}, [(r.status_code, r.text) for r in answers]
        assert statuses[201] >= 1, statuses  # the winner; the rest replay or are told it is in use
        created = {r.content for r in answers if r.status_code == 201}
        assert len(created) == 1, "every 201 is the same bytes"
        for r in answers:
            if r.status_code == 409:
                assert r.json()["type"].endswith("/idempotency-key-in-use"), r.text
        # Afterwards every instance replays it, byte for byte.
        for n in range(INSTANCES):
            with cluster.client(user, n=n) as c:
                replay = c.post("/v1/orders", json=body, headers={"idempotency-key": key})
            assert replay.status_code == 201 and replay.content in created, (n, replay.text)
        rows = cluster.query("SELECT id::text FROM orders WHERE customer_id = $1", user)
        assert len(rows) == 1, rows
        assert rows[0][0] == httpx.Response(201, content=next(iter(created))).json()["id"]


def test_the_shared_quota_is_one_quota_across_instances(cluster: Cluster) -> None:
    user = f"quota-{uuid.uuid4().hex[:8]}"
    codes = []
    for n in range(INSTANCES * QUOTA):  # each instance in turn, each asked as often as the quota
        with cluster.client(user, n=n % INSTANCES) as c:
            codes.append(c.get("/v1/orders").status_code)
    # Per-instance limits alone would admit the quota on each instance: three times as many.
    assert codes.count(200) == QUOTA, codes
    assert codes[QUOTA:] == [429] * (len(codes) - QUOTA), codes


def test_load_through_the_balancer_reaches_every_instance_and_loses_nothing(cluster: Cluster) -> None:
    sku = f"LOAD-{uuid.uuid4().hex[:6]}"
    put_product(cluster, sku, "1.00")
    before = cluster.balancer.served()
    acknowledged: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def customer(n: int) -> None:
        user = f"load-{n}-{uuid.uuid4().hex[:8]}"
        for _ in range(PER_CUSTOMER):  # new connections, so that round robin spreads one user too
            with cluster.client(user) as c:
                r = c.post("/v1/orders", json=order_body((sku, 1)), headers={"idempotency-key": uuid.uuid4().hex})
            with lock:
                (acknowledged if r.status_code == 201 else failures).append(
                    r.json()["id"] if r.status_code == 201 else f"{r.status_code} {r.text}"
                )

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    after = cluster.balancer.served()
    assert not failures, failures[:5]
    assert len(acknowledged) == 8 * PER_CUSTOMER
    assert all(after[f"s{n}"] > before.get(f"s{n}", 0) for n in range(INSTANCES)), (before, after)
    stored = cluster.query(
        "SELECT o.id::text FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE l.sku = $1", sku
    )
    assert sorted(r[0] for r in stored) == sorted(acknowledged), "every acknowledged order stored once"


def test_a_price_change_reaches_every_instance_within_the_refresh_bound(cluster: Cluster) -> None:
    sku = f"PRICE-{uuid.uuid4().hex[:6]}"
    put_product(cluster, sku, "10.00")
    body = order_body((sku, 1))
    clients = [cluster.client(f"quoter-{n}-{uuid.uuid4().hex[:8]}", n=n) for n in range(INSTANCES)]
    try:
        # Each instance's snapshot has the product (a quote answers from the snapshot alone).
        for c in clients:
            deadline = time.monotonic() + 10
            while (r := c.post("/v1/quotes", json=body)).status_code != 200:
                assert time.monotonic() < deadline, r.text
                time.sleep(0.02)
        put_product(cluster, sku, "12.50", n=0)
        changed = time.monotonic()
        seen: dict[int, float] = {}
        while len(seen) < INSTANCES and time.monotonic() - changed < 10:
            for n, c in enumerate(clients):
                if n in seen:
                    continue
                r = c.post("/v1/quotes", json=body)
                assert r.status_code == 200, r.text
                if r.json()["total"] == "12.50":
                    seen[n] = time.monotonic() - changed
            time.sleep(0.02)
    finally:
        for c in clients:
            c.close()
    assert seen[0] < 0.1, "the instance that served the write prices with it at once"
    # The documented bound: one refresh period, plus the refresh query and this loop's own polling.
    assert len(seen) == INSTANCES and max(seen.values()) < 2 * CATALOG_REFRESH, seen


def test_sweepers_and_relays_on_every_instance_apply_each_change_once(cluster: Cluster) -> None:
    sku = f"SWEEP-{uuid.uuid4().hex[:6]}"
    stock = 1000
    put_product(cluster, sku, "2.00", stock=stock)
    user_ids: list[str] = []
    for n in range(10):
        user = f"sweep-{n}-{uuid.uuid4().hex[:8]}"
        with cluster.client(user) as c:
            for _ in range(3):
                r = c.post("/v1/orders", json=order_body((sku, 2)), headers={"idempotency-key": uuid.uuid4().hex})
                assert r.status_code == 201, r.text
                user_ids.append(r.json()["id"])
    assert cluster.query("SELECT stock FROM products WHERE sku = $1", sku)[0][0] == stock - 2 * len(user_ids)
    # Every instance runs a sweeper; wait until the orders are expired.
    deadline = time.monotonic() + PAYMENT_TIMEOUT + 30
    while True:
        rows = cluster.query("SELECT status, cancel_reason FROM orders WHERE id = ANY($1::uuid[])", user_ids)
        if all(r["status"] == "CANCELED" for r in rows):
            break
        assert time.monotonic() < deadline, Counter(r["status"] for r in rows)
        time.sleep(0.1)
    assert {r["cancel_reason"] for r in rows} == {"expired"}
    # Each expiry released its stock once: back where it started.
    assert cluster.query("SELECT stock FROM products WHERE sku = $1", sku)[0][0] == stock
    events = cluster.query(
        "SELECT event_id::text, event_type FROM outbox WHERE aggregate_id = ANY($1::uuid[])", user_ids
    )
    assert Counter(e["event_type"] for e in events) == {
        "order.created": len(user_ids),
        "order.canceled": len(user_ids),
    }
    # Every instance runs a relay: each event reaches the stream exactly once.
    wanted = {e["event_id"] for e in events}
    client = redis.Redis.from_url(cluster.redis_url, decode_responses=True)
    deadline = time.monotonic() + 30
    while True:
        published = Counter(
            fields["event_id"] for _, fields in client.xrange(cluster.stream) if fields["event_id"] in wanted
        )
        if set(published) == wanted:
            break
        assert time.monotonic() < deadline, f"{len(published)} of {len(wanted)} published"
        time.sleep(0.1)
    assert set(published.values()) == {1}, [k for k, v in published.items() if v > 1]
    unpublished = cluster.query(
        "SELECT count(*) FROM outbox WHERE aggregate_id = ANY($1::uuid[]) AND published_at IS NULL", user_ids
    )
    assert unpublished[0][0] == 0
