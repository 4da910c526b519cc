"""End-to-end fixtures: a real ``orderfast serve`` (Granian) process on a real socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from orderfast.http.auth import mint_token
from orderfast.services.payments import sign
from tests.conftest import JWT_SECRET, WEBHOOK_SECRET

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One orderfast process; ``client`` talks to it over loopback."""

    def __init__(self, workdir: Path, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ORDERFAST_DATA_DIR": str(workdir / "data"),
            "ORDERFAST_JWT_SECRET": JWT_SECRET,
            "ORDERFAST_RATELIMIT_USER": "100000/1",
            "ORDERFAST_RATELIMIT_IP": "1000000/1",
            "ORDERFAST_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **env,
        }
        self.log_path = workdir / "server.log"
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "orderfast", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> None:
        self.cli("migrate", "--seed-demo")
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "orderfast",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so its workers can be killed with it
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        # Poll the startup probe: the condition is observed, never assumed after a fixed wait.
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                ready = [
                    httpx.get(f"{self.base_url}/startupz", timeout=1).status_code == 200
                    for _ in range(self.workers * 2)
                ]
                if all(ready):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def token(self, sub: str, *roles: str) -> str:
        return mint_token(JWT_SECRET, sub, roles)

    def client(self, sub: str | None = None, *roles: str) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.token(sub, *roles)}"} if sub else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


def start_server(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    pg_database_factory: Callable[[], str] | None,
    env: dict[str, str] | None = None,
    workers: int = 2,
) -> Server:
    workdir = tmp_path_factory.mktemp(f"e2e-{kind}")
    extra = dict(env or {})
    if kind == "postgres":
        assert pg_database_factory is not None
        extra["ORDERFAST_DATABASE_URL"] = pg_database_factory()
    server = Server(workdir, extra, workers=workers)
    server.start()
    return server


@contextlib.contextmanager
def running(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], *, workers: int = 2) -> Iterator[Server]:
    """A SQLite-backed server with extra settings, stopped on exit."""
    srv = start_server(tmp_path_factory, "sqlite", None, env, workers=workers)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    factory = request.getfixturevalue("pg_database_factory") if request.param == "postgres" else None
    srv = start_server(tmp_path_factory, request.param, factory)
    try:
        yield srv
    finally:
        srv.stop()


def order_body(*items: tuple[str, int], currency: str = "USD", **extra: Any) -> dict[str, Any]:
    return {"currency": currency, "items": [{"sku": s, "quantity": q} for s, q in items], **extra}


def webhook(
    server: Server, payload: dict[str, Any], *, secret: str = WEBHOOK_SECRET, skew: int = 0, header: str | None = None
) -> httpx.Response:
    body = orjson.dumps(payload)
    signature = header if header is not None else sign(secret, int(time.time()) + skew, body)
    with httpx.Client(base_url=server.base_url) as c:
        return c.post(
            "/v1/payments/webhook",
            content=body,
            headers={"content-type": "application/json", "orderfast-signature": signature},
        )


def payment(
    order: dict[str, Any], status: str = "succeeded", amount: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "order_id": order["id"],
        "status": status,
        "amount": amount or order["total"],
        "currency": order["currency"],
        **extra,
    }


def business_traffic(server: Server, tag: str) -> None:
    """What the business metrics count, once each: two orders (one replayed, one key reused), an
    out-of-stock refusal, a cancellation, a signed payment and a refund (the metrics and dashboard
    tests drive a server with it)."""
    with server.client(f"{tag}-{uuid.uuid4().hex[:8]}") as c:
        body = order_body(("SKU-1", 1))
        first = c.post("/v1/orders", json=body, headers={"idempotency-key": f"{tag}-1"})
        assert first.status_code == 201, first.text
        assert c.post("/v1/orders", json=body, headers={"idempotency-key": f"{tag}-1"}).status_code == 201
        reused = c.post("/v1/orders", json=order_body(("SKU-1", 2)), headers={"idempotency-key": f"{tag}-1"})
        assert reused.status_code == 422
        short = c.post("/v1/orders", json=order_body(("SKU-2", 10_000)), headers={"idempotency-key": f"{tag}-2"})
        assert short.status_code == 409
        second = c.post("/v1/orders", json=body, headers={"idempotency-key": f"{tag}-3"}).json()
        assert c.post(f"/v1/orders/{second['id']}/cancel").status_code == 200
    paid = first.json()
    assert webhook(server, payment(paid)).status_code == 200
    with server.client("ops", "admin") as admin:
        assert admin.post(f"/v1/orders/{paid['id']}/refunds", json={"amount": "10.00"}).status_code == 200
