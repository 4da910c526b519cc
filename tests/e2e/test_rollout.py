"""A rolling update under load, as k8s/ describes it (maxUnavailable 0, maxSurge 1), on this machine:
orderfast instances behind a real HAProxy that health-checks /readyz, each old instance replaced by a
new one, one at a time, while clients keep creating orders through the balancer. Zero failed
requests, zero lost orders, no order created twice."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
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
from tests.conftest import JWT_SECRET, unavailable
from tests.e2e.conftest import STARTUP_TIMEOUT, free_port, order_body

CLIENTS = 8
SKU = "ROLLOUT-1"
DRAIN_DELAY = 2.0
CHECK_INTER_MS = 100  # HAProxy's health-check period: far inside the drain delay


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None:
        unavailable("haproxy (apt-get install haproxy)")
    assert found is not None
    return found


class Instance:
    """One `orderfast serve` process (one worker) on its own port."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orderfast", "serve", "--port", str(port), "--workers", "1"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = log

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def terminate(self) -> int:
        """SIGTERM, as a rollout sends it; the exit code once drained."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=DRAIN_DELAY + 30)


class Balancer:
    """HAProxy with a backend of fixed slots; a slot is UP while its instance answers /readyz 200."""

    def __init__(self, workdir: Path, slots: list[int]) -> None:
        self.port = free_port()
        self.admin = workdir / "haproxy.sock"
        config = workdir / "haproxy.cfg"
        servers = "\n".join(
            f"    server s{i} 127.0.0.1:{port} check inter {CHECK_INTER_MS} fall 1 rise 2"
            for i, port in enumerate(slots)
        )
        config.write_text(
            f"""global
    stats socket {self.admin} mode 600 level admin
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # No retries: a request the balancer sends to an instance that is going away fails, as it
    # would behind a balancer that does not retry (a Kubernetes Service) — the drain must prevent it.
    retries 0
frontend api
    bind 127.0.0.1:{self.port}
    default_backend orderfast
backend orderfast
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""
        )
        with (workdir / "haproxy.log").open("wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [haproxy_binary(), "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=log
            )

    def _ask(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.admin))
            s.sendall(command.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def served(self) -> dict[str, int]:
        """Requests each server slot was sent (the `stot` column of `show stat`)."""
        rows = [line.split(",") for line in self._ask("show stat").splitlines() if line.startswith("orderfast,")]
        return {row[1]: int(row[7]) for row in rows if row[1].startswith("s")}

    def states(self) -> dict[str, str]:
        states = {}
        for line in self._ask("show servers state orderfast").splitlines():
            parts = line.split()
            if len(parts) > 6 and parts[0].isdigit():
                states[parts[3]] = "UP" if parts[5] == "2" else "DOWN"  # srv_op_state 2: running
        return states

    def wait(self, server: str, state: str) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.states().get(server) == state:
                    return
            except OSError:
                pass  # the admin socket is not there yet
            assert time.monotonic() < deadline, f"{server} never {state}: {self.states()}"
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


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
