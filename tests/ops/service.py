"""orderfast as an operator runs it: the CLI, a real ``orderfast serve`` process, and customers
creating orders against it from threads."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from orderfast.http.auth import mint_token
from tests.conftest import JWT_SECRET
from tests.ops.pgcluster import free_port, wait_until

ORDER_BODY = json.dumps({"currency": "USD", "items": [{"sku": "DRILL-1", "quantity": 1}]}).encode()
PRODUCT = {"name": "Drill beans", "price": "1.00", "currency": "USD", "stock": 1_000_000_000}


def orderfast_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The tests' environment without any ORDERFAST_* setting of the machine (no Redis, no relay)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFAST_")}
    return {
        **env,
        "ORDERFAST_DATABASE_URL": database_url,
        "ORDERFAST_DATA_DIR": str(data_dir),
        "ORDERFAST_JWT_SECRET": JWT_SECRET,
        "ORDERFAST_RATELIMIT_USER": "1000000/1",
        "ORDERFAST_RATELIMIT_IP": "1000000/1",
        "ORDERFAST_SWEEP_INTERVAL": "0",
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``orderfast ARGS`` (this interpreter's); the caller checks the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "orderfast", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def token(sub: str, *roles: str) -> str:
    return mint_token(JWT_SECRET, sub, roles)


class Service:
    """``orderfast serve`` on a free port; ``stop`` is SIGINT (then SIGKILL) to its process group."""

    def __init__(self, env: dict[str, str], log: Path, *, workers: int = 1) -> None:
        self.env = env
        self.log = log
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30) -> None:
        argv = [sys.executable, "-m", "orderfast", "serve", "--port", str(self.port), "--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"orderfast serve exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(ready, timeout=timeout, what="orderfast serve ready")
        except TimeoutError as e:
            self.stop()
            raise TimeoutError(f"{e}:\n{self.log.read_text()}") from None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def client(self, sub: str, *roles: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"authorization": f"Bearer {token(sub, *roles)}"}, timeout=10
        )


@dataclass(frozen=True)
class Attempt:
    """One create-order request: when it was sent and answered (monotonic clock) and the answer."""

    customer: str
    key: str
    sent: float
    answered: float
    status: int  # 0: no HTTP answer
    order_id: str | None


class Load:
    """Customers creating orders back to back, each on its own keep-alive connection, with a unique
    Idempotency-Key per order; every fourth order is canceled right after (events with sequence 2,
    stock released), so that reconciliation has more than creations to check."""

    def __init__(self, base_url: str, *, customers: int = 4) -> None:
        self.base_url = base_url
        self.customers = [f"drill-{i}" for i in range(customers)]
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in self.customers]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "load threads did not stop"

    def created(self) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.status == 201]

    def _run(self, customer: str) -> None:
        headers = {"authorization": f"Bearer {token(customer)}", "content-type": "application/json"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=10) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                key = f"{customer}-{n}"
                sent = time.monotonic()
                order_id = None
                try:
                    r = http.post("/v1/orders", content=ORDER_BODY, headers={"idempotency-key": key})
                    status = r.status_code
                    if status == 201:
                        order_id = str(r.json()["id"])
                except httpx.HTTPError:
                    status = 0
                answered = time.monotonic()
                with self._lock:
                    self.attempts.append(Attempt(customer, key, sent, answered, status, order_id))
                if order_id is not None and n % 4 == 0:
                    with contextlib.suppress(httpx.HTTPError):
                        http.post(f"/v1/orders/{order_id}/cancel")
