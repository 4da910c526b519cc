"""What the fault tests drive and break: customers creating orders from threads (every request and its
answer recorded), a private Redis, ``orderfast relay`` processes, and the signals that freeze or kill
a process tree. Everything here is a real process or a real socket; nothing is mocked."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import redis

from tests.e2e.conftest import Server
from tests.faults.audit import INITIAL_STOCK, SKU
from tests.ops.pgcluster import Cluster, free_port, wait_until

# The request budget the fault tests give the server, and the slack they allow on top of it for a
# loaded two-core machine (scheduling, the client's own threads).
BUDGET = 1.0
MARGIN = 1.0
BACKOFF = 0.1  # seconds a customer waits after a 503 before its next order


def fault_server(workdir: Path, database_url: str, *, workers: int = 1, **settings: str) -> Server:
    """An ``orderfast serve`` on ``database_url`` with the fault tests' budget, none of the machine's
    ORDERFAST_* settings, the audited product in its catalog, and no background sweeper."""
    server = Server(workdir, {}, workers=workers)
    server.env = {k: v for k, v in server.env.items() if not k.startswith("ORDERFAST_") or k in _SERVER_KEEP} | {
        "ORDERFAST_DATABASE_URL": database_url,
        "ORDERFAST_REQUEST_TIMEOUT": str(BUDGET),
        "ORDERFAST_SWEEP_INTERVAL": "0",
        **settings,
    }
    server.start()
    with server.client("admin", "admin") as admin:
        admin.put(
            f"/v1/products/{SKU}", json={"name": "c", "price": "1.00", "currency": "USD", "stock": INITIAL_STOCK}
        ).raise_for_status()
    return server


_SERVER_KEEP = {
    "ORDERFAST_DATA_DIR",
    "ORDERFAST_JWT_SECRET",
    "ORDERFAST_RATELIMIT_USER",
    "ORDERFAST_RATELIMIT_IP",
    "ORDERFAST_WEBHOOK_SECRET",
}


def kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a process started with ``start_new_session`` and everything in its group."""
    if proc is None or proc.poll() is not None:
        return
    pgid = os.getpgid(proc.pid)
    assert pgid != os.getpgid(0), "never kill the test runner's own group"
    os.killpg(pgid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Stops the server on the way out, whatever happened (a stopped server is left alone)."""
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        kill_group(server.proc)


# -- customers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One create-order request and its answer (monotonic clock)."""

    customer: str
    key: str
    body: bytes
    sent: float
    answered: float
    status: int  # 0: no HTTP answer (the connection failed or the client timed out)
    content: bytes
    headers: Mapping[str, str]

    @property
    def seconds(self) -> float:
        return self.answered - self.sent

    @property
    def problem(self) -> str | None:
        """The problem type's last segment (``store-unavailable``), for a problem response."""
        if not self.headers.get("content-type", "").startswith("application/problem+json"):
            return None
        return str(orjson.loads(self.content)["type"]).rsplit("/", 1)[-1]

    @property
    def outcome(self) -> str | None:
        """What a 503 ``store-unavailable`` knows of the create: ``not_applied`` or ``unknown``."""
        return orjson.loads(self.content).get("outcome") if self.problem else None


def create(http: httpx.Client, customer: str, key: str, body: bytes) -> Attempt:
    sent = time.monotonic()
    try:
        r = http.post("/v1/orders", content=body, headers={"idempotency-key": key})
        status, content, headers = r.status_code, r.content, dict(r.headers)
    except httpx.HTTPError:
        status, content, headers = 0, b"", {}
    return Attempt(customer, key, body, sent, time.monotonic(), status, content, headers)


def customer_client(server: Server, customer: str, *, timeout: float = 15.0) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url,
        headers={"authorization": f"Bearer {server.token(customer)}", "content-type": "application/json"},
        timeout=timeout,
    )


class Creates:
    """Customers creating orders back to back, each on its own keep-alive connection, with a unique
    Idempotency-Key per order and 1 to 3 of the audited product in each. A customer whose connection
    fails opens a new one and goes on (or stops, with ``stop_on_failure``: the server is gone)."""

    def __init__(self, server: Server, *, customers: int = 4, stop_on_failure: bool = False) -> None:
        self.server = server
        self.stop_on_failure = stop_on_failure
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        tag = uuid.uuid4().hex[:6]
        self._threads = [
            threading.Thread(target=self._run, args=(f"fault-{tag}-{i}", i), daemon=True) for i in range(customers)
        ]

    def __enter__(self) -> Creates:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads), "a customer thread did not stop"

    def done(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def _run(self, customer: str, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            with customer_client(self.server, customer) as http:
                while not self._stop.is_set():
                    n += 1
                    body = orjson.dumps({"currency": "USD", "items": [{"sku": SKU, "quantity": 1 + (i + n) % 3}]})
                    attempt = create(http, customer, f"{customer}-{n}", body)
                    with self._lock:
                        self.attempts.append(attempt)
                    if attempt.status == 0:
                        break  # a fresh connection for the next one
                    if attempt.status == 503:
                        # A client backing off, though for less than Retry-After: the pressure stays on
                        # and the outage is not a burst of thousands of instant refusals to retry.
                        time.sleep(BACKOFF)
            if self.stop_on_failure:
                return

    def wait_for(self, what: str, count: int, *, since: float = 0.0, status: int = 201, timeout: float = 30) -> float:
        """Until ``count`` answers with ``status`` were sent at or after ``since``; when the last came."""

        def seen() -> float | None:
            got = [a.answered for a in self.done() if a.status == status and a.sent >= since]
            return max(got) if len(got) >= count else None

        return wait_until(seen, timeout=timeout, what=what)


def settle(server: Server, attempt: Attempt, *, timeout: float = 15.0) -> Attempt:
    """The client's retry of ``attempt`` (same customer, key and body), repeated as the answers say —
    after ``Retry-After`` for 503 or 409 ``idempotency-key-in-use`` — until it gets another answer."""
    deadline = time.monotonic() + timeout
    with customer_client(server, attempt.customer) as http:
        while True:
            again = create(http, attempt.customer, attempt.key, attempt.body)
            waiting = again.status == 503 or (again.status == 409 and again.problem == "idempotency-key-in-use")
            if not waiting or time.monotonic() > deadline:
                return again
            time.sleep(min(float(again.headers.get("retry-after", "1")), 1.0))  # as a client backs off


def order_id(attempt: Attempt) -> str:
    return str(orjson.loads(attempt.content)["id"])


# -- processes ------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def postgres_pids(cluster: Cluster) -> list[int]:
    """The postmaster of a private cluster and every process it started."""
    postmaster = int((cluster.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    return [postmaster, *children(postmaster)]


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def start_again(cluster: Cluster) -> None:
    """``pg_ctl start`` on the port the cluster had (``Cluster.start`` would pick a new one, and the
    server's DSN names the old)."""
    tools = cluster.tools
    tools.run(tools.pg("pg_ctl", "-D", cluster.datadir, "-l", cluster.log, "-w", "-t", "30", "start"), timeout=40)
    cluster.running = True


class RedisServer:
    """A private ``redis-server`` on a free port, no persistence of its own (``--save ''``,
    ``--appendonly no``); ``stop`` is ``SHUTDOWN SAVE``, so the next ``start`` in the same directory
    has what it had — an outage, not a loss."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--dir", str(self.dir)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{(self.dir / 'redis.log').read_text()}")
            try:
                with self.client() as c:
                    return bool(c.ping())
            except redis.RedisError:
                return False

        wait_until(answers, timeout=15, what="redis-server answers")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(redis.ConnectionError), self.client() as c:
            c.shutdown(save=True)
        self.proc.wait(timeout=15)

    def kill(self) -> None:
        kill_group(self.proc)


class RelayProcess:
    """``orderfast relay`` (JSON log lines in ``log``); the caller stops it."""

    def __init__(self, env: Mapping[str, str], log: Path, *args: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orderfast", "relay", *args],
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.log.read_bytes().splitlines() if line.startswith(b"{")]

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)

    def kill(self) -> None:
        kill_group(self.proc)


def relay_env(database_url: str, redis_url: str, workdir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFAST_")}
    return env | {
        "ORDERFAST_DATABASE_URL": database_url,
        "ORDERFAST_REDIS_URL": redis_url,
        "ORDERFAST_STREAM_PREFIX": f"fault:{uuid.uuid4().hex[:8]}:",
        "ORDERFAST_DATA_DIR": str(workdir),
        **settings,
    }


def stream_event_ids(client: redis.Redis, stream: str) -> list[str]:
    """The event ids in ``stream``, in stream order, duplicates included (``decode_responses`` client)."""
    entries: list[tuple[str, dict[str, str]]] = client.xrange(stream)  # type: ignore[assignment]
    return [fields["event_id"] for _, fields in entries]
