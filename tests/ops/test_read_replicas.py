"""Read replicas against a real streaming replica: a private primary, a standby made from it with
``pg_basebackup -R`` streaming its WAL, and ``orderfast serve`` with ``ORDERFAST_DATABASE_READ_URL``.

What must hold: a client that writes then reads at once always sees its write (its position comes
back with the write; a read carrying it waits for no replica that has not replayed it); a replica
whose replay is paused keeps serving reads that carry no position for at most the configured lag,
then the primary takes them; a dead replica costs no request anything; and while all is well,
replicas do serve reads."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.ops.pgcluster import Cluster, Tools, wait_until
from tests.ops.service import Service, cli, orderfast_env, token

MAX_LAG = 4.0  # ORDERFAST_READ_MAX_LAG for the drill: long enough to see a paused replica serve
SKU = "REPLICA-1"


@dataclass
class Replicated:
    primary: Cluster
    replica: Cluster
    service: Service

    def client(self, sub: str, *roles: str) -> httpx.Client:
        """A client with a cookie jar (as httpx's is): it sends back the position it was given."""
        return self.service.client(sub, *roles)

    def bare(self, sub: str, *roles: str) -> httpx.Client:
        """A client that keeps no cookies and sends no position."""
        return httpx.Client(
            base_url=self.service.base_url,
            headers={"authorization": f"Bearer {token(sub, *roles)}"},
            timeout=10,
            event_hooks={"request": [lambda request: request.headers.pop("cookie", None)]},
        )

    def replica_reads(self) -> float:
        text = httpx.get(f"{self.service.base_url}/metrics", timeout=5).text
        found = re.search(r'^orderfast_db_reads_total\{target="replica"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    def replay(self, paused: bool) -> None:
        self.replica.query(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()", database="orderfast")


@pytest.fixture(scope="module")
def replicated(tools: Tools) -> Iterator[Replicated]:
    primary = Cluster.init(tools, "primary")
    with contextlib.ExitStack() as running:  # unwound in reverse: server, replica, primary
        primary.start()
        running.callback(primary.stop, "immediate")
        primary.query("CREATE DATABASE orderfast")
        replica = Cluster(tools, "replica")
        tools.run(
            tools.pg("pg_basebackup", *primary.client_args(), "-D", replica.datadir, "-R", "-X", "stream", "-c", "fast")
        )
        replica.start()
        running.callback(replica.stop, "immediate")
        wait_until(
            lambda: primary.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")[0][0] == 1,
            timeout=30,
            what="the replica streaming",
        )
        data = tools.home / "orderfast-data"
        data.mkdir()
        env = {
            **orderfast_env(primary.dsn("orderfast"), data),
            "ORDERFAST_DATABASE_READ_URL": replica.dsn("orderfast"),
            "ORDERFAST_READ_MAX_LAG": str(MAX_LAG),
        }
        done = cli(env, "migrate")
        assert done.returncode == 0, done.stderr
        service = Service(env, tools.home / "serve.log")
        service.start()
        running.callback(service.stop)
        setup = Replicated(primary, replica, service)
        with setup.bare("ops", "admin") as admin:
            product = {"name": "Replica beans", "price": "1.00", "currency": "USD", "stock": 1_000_000}
            assert admin.put(f"/v1/products/{SKU}", json=product).status_code == 201
        yield setup


def create(c: httpx.Client) -> dict[str, object]:
    r = c.post(
        "/v1/orders",
        json={"currency": "USD", "items": [{"sku": SKU, "quantity": 1}]},
        headers={"idempotency-key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_replicas_serve_reads_while_they_keep_up(replicated: Replicated) -> None:
    before = replicated.replica_reads()
    with replicated.bare(f"reader-{uuid.uuid4().hex[:8]}") as c:
        order = create(c)
        # Once the replica has replayed the order, plain reads go there.
        wait_until(
            lambda: c.get(f"/v1/orders/{order['id']}").status_code == 200 and replicated.replica_reads() > before,
            timeout=10,
            what="a read served by the replica",
        )
        assert c.get("/v1/orders").json()["items"][0]["id"] == order["id"]


def test_a_client_reads_its_writes_at_once_even_from_a_paused_replica(replicated: Replicated) -> None:
    for paused in (False, True):
        replicated.replay(paused)
        try:
            with replicated.client(f"ryw-{paused}-{uuid.uuid4().hex[:8]}") as c:
                for _ in range(20):
                    created = create(c)
                    position = c.cookies.get("orderfast_read_after")
                    assert position and re.fullmatch(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}", position), c.cookies
                    got = c.get(f"/v1/orders/{created['id']}")
                    assert got.status_code == 200 and got.json() == created
                    listed = c.get("/v1/orders", params={"limit": 1}).json()["items"]
                    assert listed[0]["id"] == created["id"], "the newest order heads the list at once"
                    canceled = c.post(f"/v1/orders/{created['id']}/cancel")
                    assert canceled.status_code == 200
                    assert c.get(f"/v1/orders/{created['id']}").json()["status"] == "CANCELED"
            # The position works as a header too, for clients that keep no cookies.
            with replicated.bare(f"ryw-h-{uuid.uuid4().hex[:8]}") as c:
                r = c.post(
                    "/v1/orders",
                    json={"currency": "USD", "items": [{"sku": SKU, "quantity": 1}]},
                    headers={"idempotency-key": uuid.uuid4().hex},
                )
                after = r.headers["orderfast-read-after"]
                listed = c.get("/v1/orders", headers={"orderfast-read-after": after}).json()["items"]
                assert listed[0]["id"] == r.json()["id"]
                # Without it, a read of the one order still finds it (a replica's miss is asked again
                # of the primary).
                assert c.get(f"/v1/orders/{r.json()['id']}").status_code == 200
        finally:
            replicated.replay(False)


def test_a_paused_replica_serves_plain_reads_for_at_most_the_lag_then_the_primary_does(
    replicated: Replicated,
) -> None:
    path = f"/v1/products/{SKU}"
    with replicated.bare("pause-admin", "admin") as admin, replicated.bare(f"pause-{uuid.uuid4().hex[:8]}") as c:
        old = admin.get(path).json()
        replicated.replay(True)
        try:
            wait_until(
                lambda: replicated.replica.query("SELECT pg_is_wal_replay_paused()", database="orderfast")[0][0],
                timeout=10,
                what="replay paused",
            )
            new_price = "2.50" if old["price"] != "2.50" else "3.50"
            written = admin.put(path, json={**{k: old[k] for k in ("name", "currency", "stock")}, "price": new_price})
            assert written.status_code == 200
            changed = time.monotonic()
            # The replica has not replayed the change: a plain read there still sees the old price...
            assert c.get(path).json()["price"] == old["price"], "served by the paused replica"
            # ...a read carrying the write's position goes to the primary...
            fresh = c.get(path, headers={"orderfast-read-after": written.headers["orderfast-read-after"]})
            assert fresh.json()["price"] == new_price
            # ...and once the replica is more than the lag behind, plain reads go to the primary too.
            wait_until(lambda: c.get(path).json()["price"] == new_price, timeout=MAX_LAG + 10, what="primary")
            assert time.monotonic() - changed <= MAX_LAG + 1.0
        finally:
            replicated.replay(False)


def test_a_dead_replica_costs_no_request_anything(replicated: Replicated) -> None:
    replicated.replica.stop("immediate")
    try:
        with replicated.client(f"dead-{uuid.uuid4().hex[:8]}") as c, replicated.bare("dead-plain") as plain:
            for _ in range(20):
                order = create(c)
                assert c.get(f"/v1/orders/{order['id']}").status_code == 200
                assert plain.get(f"/v1/orders/{order['id']}").status_code == 404  # not theirs: a 404, not a 5xx
                assert plain.get(f"/v1/products/{SKU}").status_code == 200
                assert c.get("/v1/orders").status_code == 200
        assert httpx.get(f"{replicated.service.base_url}/readyz", timeout=5).status_code == 200
    finally:
        replicated.replica.start(same_port=True)
    # Back, it serves reads again.
    wait_until(
        lambda: (
            replicated.primary.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")[0][0] == 1
        ),
        timeout=30,
        what="the replica streaming again",
    )
    before = replicated.replica_reads()
    with replicated.bare(f"back-{uuid.uuid4().hex[:8]}") as c:
        wait_until(
            lambda: c.get(f"/v1/products/{SKU}").status_code == 200 and replicated.replica_reads() > before,
            timeout=15,
            what="reads on the replica again",
        )
