"""The load harness: orderfast, its peers and its ceilings, measured in one run on this machine.

Starts everything itself on loopback — a fresh PostgreSQL database (``synchronous_commit=on``, the
server default) with a seeded catalog (10 000 wide products and 3 hot ones), orderfast under
Granian, the FastAPI peer under uvicorn, a bare Granian endpoint — and measures:

* closed-loop maximum throughput with wrk (``bench/scenario.lua``), per scenario: create-order over
  the wide catalog (1, 3 and 20 lines), create-order on 3 hot SKUs (then checks nothing was
  oversold), replay, get-order, list-orders, quote, and a mix; the median of N runs after a warm-up;
* open-loop fixed-rate load (``bench/openloop.py``: latency from each request's intended send time,
  HdrHistogram) at 25/50/75/90/100 % of each system's closed-loop create-order maximum;
* the peers in the same run: the FastAPI peer's create-order, the featureless batcher's
  (``bench/peers/batcher.py``: the least a durable create-order needs — raw ASGI, one multi-row
  INSERT per batch, nothing else), the bare Granian floor (for quote), and ``pgbench`` running the
  same SQL transaction one order at a time (the database ceiling);
* CPU used by the server, PostgreSQL and the load generator (in cores; per order for create-order,
  orderfast's beside the batcher's), and RSS per server worker.

Results go to ``bench/results/harness-<mode>-<time>.{json,md,png}``.

    python bench/harness.py            # full: ~15 minutes
    python bench/harness.py --quick    # under 2 minutes: fewer scenarios, short runs, one each
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import openloop  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402

PG_ADMIN = os.environ.get("ORDERFAST_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "harness-" + "s" * 40
BIN = Path(sys.executable).parent
WIDE, HOT_STOCK, HISTORY = 10_000, 1_000_000_000, 20_000
FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0)
WORKERS = os.cpu_count() or 2


@dataclass
class Mode:
    warmup: int
    duration: int
    runs: int
    connections: int
    scenarios: tuple[tuple[str, int], ...]  # (scenario, lines)
    fractions: tuple[float, ...]
    open_duration: int


FULL = Mode(
    warmup=10,
    duration=15,
    runs=3,
    connections=64,
    scenarios=(
        ("create-wide", 3),
        ("create-wide", 1),
        ("create-wide", 20),
        ("create-hot", 3),
        ("replay", 3),
        ("get", 3),
        ("list", 3),
        ("quote", 3),
        ("mix", 3),
    ),
    fractions=FRACTIONS,
    open_duration=15,
)
QUICK = Mode(
    warmup=3,
    duration=5,
    runs=1,
    connections=64,
    scenarios=(("create-wide", 3), ("create-hot", 3), ("quote", 3)),
    fractions=(0.5,),
    open_duration=5,
)


# -- machine and database ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "host": platform.node(),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


async def fresh_database(name: str) -> str:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


@contextmanager
def prepared_database(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh database named ``name``, migrated and seeded; dropped afterwards. Yields its DSN and
    what ``seed`` reports."""
    dsn = asyncio.run(fresh_database(name))
    try:
        subprocess.run(
            [str(BIN / "orderfast"), "migrate"],
            env={**os.environ, "ORDERFAST_DATABASE_URL": dsn},
            check=True,
            capture_output=True,
        )
        yield dsn, asyncio.run(seed(dsn))
    finally:
        asyncio.run(_drop(dsn))


async def seed(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO products (sku, name, currency, price_minor, stock, version, updated_at) "
            "SELECT 'W-' || lpad(g::text, 5, '0'), 'Wide ' || g, 'USD', 1234, $1, nextval('catalog_version'), now() "
            "FROM generate_series(1, $2) g",
            HOT_STOCK,
            WIDE,
        )
        await conn.execute(
            "INSERT INTO products (sku, name, currency, price_minor, stock, version, updated_at) "
            "SELECT 'HOT-' || g, 'Hot ' || g, 'USD', 999, $1, nextval('catalog_version'), now() "
            "FROM generate_series(1, 3) g",
            HOT_STOCK,
        )
        # A history of orders, so the tables have statistics and the planner the plans of a live
        # system: planned against empty tables, PostgreSQL caches sequential scans (the order_lines
        # foreign-key check above all) in every pooled connection until the next ANALYZE.
        await conn.execute(
            "INSERT INTO orders (id, customer_id, status, currency, subtotal_minor, discount_minor, tax_minor, "
            "total_minor, coupon_code, tax_inclusive, created_at) "
            "SELECT gen_random_uuid(), 'history-' || (g % 1000), 'PAID', 'USD', 1234, 0, 0, 1234, NULL, false, "
            "now() - interval '1 day' FROM generate_series(1, $1) g",
            HISTORY,
        )
        await conn.execute(
            "INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_minor, discount_minor, "
            "tax_minor, total_minor, tax_rate) SELECT id, 1, 'W-00001', 'Wide 1', 1, 1234, 0, 0, 1234, '0' FROM orders"
        )
        await conn.execute(
            "INSERT INTO idempotency_keys (principal, key, fingerprint, status, response_body, order_id, created_at) "
            "SELECT customer_id, id::text, '\\x00', 201, '\\x00', id, created_at FROM orders"
        )
        await conn.execute("VACUUM ANALYZE")
        return {
            "postgres": await conn.fetchval("SHOW server_version"),
            "synchronous_commit": await conn.fetchval("SHOW synchronous_commit"),
            "fsync": await conn.fetchval("SHOW fsync"),
        }
    finally:
        await conn.close()


async def hot_audit(dsn: str) -> dict[str, Any]:
    """Flash-sale check: every unit that left stock is in exactly one order line; none below zero."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT p.sku, p.stock, p.reserved, "
            "coalesce((SELECT sum(quantity) FROM order_lines l WHERE l.sku = p.sku), 0) AS sold "
            "FROM products p WHERE p.sku LIKE 'HOT-%' ORDER BY p.sku"
        )
    finally:
        await conn.close()
    ok = all(r["stock"] >= 0 and r["stock"] + r["sold"] == HOT_STOCK and r["reserved"] == r["sold"] for r in rows)
    return {"oversold": not ok, "sold": {r["sku"]: int(r["sold"]) for r in rows}}


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    name: str
    url: str
    proc: subprocess.Popen[bytes]

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


@contextmanager
def serving(name: str, cmd: list[str], env: dict[str, str], port: int, probe: str) -> Iterator[Target]:
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )
    target = Target(name, f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited early; see {log.name}")
            try:
                if all(httpx.get(target.url + probe, timeout=1).status_code < 500 for _ in range(2 * WORKERS)):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {log.name}")
            time.sleep(0.1)
        yield target
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def orderfast(dsn: str, data_dir: Path, **extra: str) -> Any:
    env = {
        **extra,
        "ORDERFAST_DATABASE_URL": dsn,
        "ORDERFAST_DATA_DIR": str(data_dir),
        "ORDERFAST_JWT_SECRET": SECRET,
        "ORDERFAST_RATELIMIT_USER": "1000000000/1",
        "ORDERFAST_RATELIMIT_IP": "1000000000/1",
        "ORDERFAST_LOG_LEVEL": "warning",
    }
    port = free_port()
    cmd = [str(BIN / "orderfast"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    return serving("orderfast", cmd, env, port, "/readyz")


def fastapi_peer(dsn: str) -> Any:
    port = free_port()
    cmd = [
        str(BIN / "uvicorn"),
        "bench.peers.fastapi_peer:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return serving("fastapi", cmd, {"PEER_DATABASE_URL": dsn, "PEER_JWT_SECRET": SECRET}, port, "/docs")


def _granian_app(name: str, app: str, env: dict[str, str]) -> Any:
    """A bare ASGI app of bench/peers under the same Granian settings as orderfast."""
    port = free_port()
    cmd = [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(WORKERS), "--loop", "uvloop", "--no-ws", app]
    return serving(name, cmd, env, port, "/")


def batcher_peer(dsn: str) -> Any:
    """The featureless floor (bench/peers/batcher.py)."""
    return _granian_app("batcher", "bench.peers.batcher:app", {"PEER_DATABASE_URL": dsn})


def bare_granian() -> Any:
    return _granian_app("bare-granian", "bench.peers.bare_asgi:app", {})


@contextmanager
def haproxy(config: str, port: int) -> Iterator[psutil.Process]:
    """HAProxy running ``config`` (which binds 127.0.0.1:``port``), once it answers ``/livez``
    through it; its process, for its CPU (it shares the cores too). Stopped afterwards."""
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        cfg.write(config)
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(["haproxy", "-f", cfg.name, "-db"], stdout=quiet, stderr=quiet)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("haproxy did not start")
            time.sleep(0.05)
        yield psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.unlink(cfg.name)


# -- CPU accounting ------------------------------------------------------------------------------


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


def _postgres() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


@contextmanager
def cpu_meter(target: Target | None) -> Iterator[dict[str, float]]:
    """Cores used while the block runs: by the server tree, by PostgreSQL, by load generators
    (waited-for children such as wrk, plus this process, which runs the open-loop generator)."""
    shares: dict[str, float] = {}
    server0 = _cpu(target.tree()) if target else {}
    pg0 = _cpu(_postgres())
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self0 = time.process_time()
    machine0 = psutil.cpu_times()
    wall0 = time.monotonic()
    yield shares
    wall = time.monotonic() - wall0
    server1 = _cpu(target.tree()) if target else {}
    pg1 = _cpu(_postgres())
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    shares["server_cores"] = round(sum(v - server0.get(k, 0.0) for k, v in server1.items()) / wall, 2)
    shares["postgres_cores"] = round(sum(v - pg0.get(k, 0.0) for k, v in pg1.items()) / wall, 2)
    kids = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    shares["generator_cores"] = round((kids + time.process_time() - self0) / wall, 2)
    # Everything busy on the machine (catches short-lived processes such as pgbench's backends).
    machine1 = psutil.cpu_times()
    busy = sum(getattr(machine1, f) - getattr(machine0, f) for f in ("user", "nice", "system", "irq", "softirq"))
    shares["machine_cores"] = round(busy / wall, 2)


def rss_mib(target: Target) -> list[float]:
    return [round(p.memory_info().rss / 2**20, 1) for p in target.tree()[1:]] or [
        round(p.memory_info().rss / 2**20, 1) for p in target.tree()
    ]


# -- load ----------------------------------------------------------------------------------------


def wrk(
    target: Target, token: str, scenario: str, lines: int, duration: int, connections: int, order_id: str = "-"
) -> dict[str, Any]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "scenario.lua"),
            target.url,
            "--",
            token,
            scenario,
            str(lines),
            order_id,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {
        "rps": round(r["requests"] / (r["duration_us"] / 1e6), 1),
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "p999_ms": r["p999_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "non2xx": r["non2xx"],
        "socket_errors": r["socket_errors"],
    }


def closed_loop(
    mode: Mode, target: Target, token: str, scenario: str, lines: int, order_id: str = "-"
) -> dict[str, Any]:
    """Warm up, then ``runs`` measured runs; the run with the median throughput is reported."""
    wrk(target, token, scenario, lines, mode.warmup, mode.connections, order_id)
    runs = []
    for _ in range(mode.runs):
        with cpu_meter(target) as cpu:
            r = wrk(target, token, scenario, lines, mode.duration, mode.connections, order_id)
        runs.append({**r, **cpu})
    runs.sort(key=lambda r: r["rps"])
    median = runs[len(runs) // 2]
    return {**median, "runs_rps": [r["rps"] for r in runs], "rss_mib": rss_mib(target)}


def create_request(host: str, token: str, lines: int) -> Callable[[int], bytes]:
    import random

    rng = random.Random(7)
    tag = f"ol-{os.getpid()}-{time.monotonic_ns()}-"

    def make(i: int) -> bytes:
        skus = rng.sample(range(1, WIDE + 1), lines)
        body = orjson.dumps({"currency": "USD", "items": [{"sku": f"W-{k:05d}", "quantity": 1} for k in skus]})
        headers = {
            "authorization": f"Bearer {token}",
            "content-type": "application/json",
            "idempotency-key": f"{tag}{i}",
        }
        return openloop.request_bytes("POST", "/v1/orders", host, headers, body)

    return make


def open_loop(mode: Mode, target: Target, token: str, max_rps: float) -> list[dict[str, Any]]:
    host = target.url.removeprefix("http://")
    out = []
    for fraction in mode.fractions:
        rate = max(1.0, max_rps * fraction)
        with cpu_meter(target) as cpu:
            result = openloop.run_blocking(
                target.url, rate, mode.open_duration, create_request(host, token, 3), connections=256
            )
        out.append({"fraction": fraction, **result.summary(), **cpu})
        print(f"  open-loop {target.name} {fraction:.0%} of max ({rate:.0f}/s): {_fmt(out[-1])}", flush=True)
    return out


def oha_check(target: Target, token: str, rate: float, duration: int) -> dict[str, Any] | None:
    """The same fixed-rate quote load from oha (``-q`` with latency correction) and from
    bench/openloop.py, so the generator's numbers can be trusted where oha cannot go."""
    oha = shutil.which("oha") or str(Path.home() / ".cargo" / "bin" / "oha")
    if not Path(oha).exists():
        return None
    body = orjson.dumps({"currency": "USD", "items": [{"sku": f"W-{k:05d}", "quantity": 1} for k in (1, 2, 3)]})
    done = subprocess.run(
        [
            oha,
            "--no-tui",
            "--output-format",
            "json",
            "-z",
            f"{duration}s",
            "-q",
            str(int(rate)),
            "--latency-correction",
            "-c",
            "64",
            "-m",
            "POST",
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Content-Type: application/json",
            "-d",
            body.decode(),
            target.url + "/v1/quotes",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(done.stdout)
    pct = doc["latencyPercentiles"]
    host = target.url.removeprefix("http://")
    raw = openloop.request_bytes(
        "POST", "/v1/quotes", host, {"authorization": f"Bearer {token}", "content-type": "application/json"}, body
    )
    ours = openloop.run_blocking(target.url, rate, duration, lambda i: raw, connections=64).summary()
    return {
        "rate": rate,
        "oha": {"p50_ms": pct["p50"] * 1000, "p99_ms": pct["p99"] * 1000, "rps": doc["summary"]["requestsPerSec"]},
        "openloop": {"p50_ms": ours["p50_ms"], "p99_ms": ours["p99_ms"], "rps": ours["achieved_rps"]},
    }


def pgbench(dsn: str, duration: int, clients: int = 32) -> dict[str, Any]:
    with cpu_meter(None) as cpu:
        out = subprocess.run(
            [
                "pgbench",
                "-n",
                "-M",
                "prepared",
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(duration),
                "-f",
                str(ROOT / "bench" / "pgbench_create.sql"),
                dsn,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out)[1])  # type: ignore[index]
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    return {"tps": round(tps, 1), "latency_avg_ms": float(latency[1]) if latency else None, **cpu}


def _fmt(r: dict[str, Any]) -> str:
    rps = r.get("rps", r.get("achieved_rps"))
    return f"{rps} req/s, P50 {r['p50_ms']:.1f} ms, P99 {r['p99_ms']:.1f} ms, non-2xx {r['non2xx']}"


# -- the run -------------------------------------------------------------------------------------


def run(mode: Mode, label: str) -> dict[str, Any]:
    report: dict[str, Any] = {"mode": label, "machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    token = mint_token(SECRET, "bench-user", ttl=86_400)
    with tempfile.TemporaryDirectory() as tmp:
        dsn = asyncio.run(fresh_database(f"orderfast_harness_{os.getpid()}"))
        subprocess.run(
            [str(BIN / "orderfast"), "migrate"],
            env={**os.environ, "ORDERFAST_DATABASE_URL": dsn},
            check=True,
            capture_output=True,
        )
        report["database"] = asyncio.run(seed(dsn))
        print(f"seeded {WIDE} + 3 products, {HISTORY} past orders; {report['database']}", flush=True)

        # 1. orderfast, every scenario, closed loop; then open loop for create-order.
        scenarios: dict[str, Any] = {}
        with orderfast(dsn, Path(tmp) / "of") as target:
            with httpx.Client(base_url=target.url, headers={"authorization": f"Bearer {token}"}) as c:
                first = c.post(
                    "/v1/orders",
                    json={"currency": "USD", "items": [{"sku": "W-00001", "quantity": 1}]},
                    headers={"idempotency-key": "harness-first"},
                )
                first.raise_for_status()
                order_id = first.json()["id"]
            for scenario, lines in mode.scenarios:
                name = scenario if scenario not in ("create-wide", "quote") or lines == 3 else f"{scenario}-{lines}"
                scenarios[name] = closed_loop(mode, target, token, scenario, lines, order_id)
                print(f"  orderfast {name}: {_fmt(scenarios[name])}", flush=True)
                if scenario == "create-hot":
                    scenarios[name]["audit"] = asyncio.run(hot_audit(dsn))
            report["orderfast"] = scenarios
            report["orderfast_open_loop"] = open_loop(mode, target, token, scenarios["create-wide"]["rps"])
            report["oha_check"] = oha_check(target, token, min(500.0, scenarios["quote"]["rps"] / 2), mode.duration)

        # 2. The FastAPI peer: the same create-order contract on the same database.
        with fastapi_peer(dsn) as peer:
            peer_create = closed_loop(mode, peer, token, "create-wide", 3)
            print(f"  fastapi create-wide: {_fmt(peer_create)}", flush=True)
            report["fastapi"] = {"create-wide": peer_create}
            report["fastapi_open_loop"] = open_loop(mode, peer, token, peer_create["rps"])

        # 3. The featureless floor: the least a durable create-order needs (no features at all).
        with batcher_peer(dsn) as floor:
            floor_create = closed_loop(mode, floor, token, "create-wide", 3)
            print(f"  batcher create-wide: {_fmt(floor_create)}", flush=True)
            report["batcher"] = {"create-wide": floor_create}
            report["batcher_open_loop"] = open_loop(mode, floor, token, floor_create["rps"])

        # 4. The HTTP floor and the database ceiling.
        with bare_granian() as bare:
            report["bare_granian"] = closed_loop(mode, bare, token, "quote", 3)
            print(f"  bare granian: {_fmt(report['bare_granian'])}", flush=True)
        report["pgbench"] = pgbench(dsn, mode.duration)
        print(f"  pgbench one order per transaction: {report['pgbench']['tps']} tps", flush=True)
        asyncio.run(_drop(dsn))
    report["ratios"] = ratios(report)
    return report


async def _drop(dsn: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def ratios(r: dict[str, Any]) -> dict[str, Any]:
    of = r["orderfast"]
    half = next((x for x in r["orderfast_open_loop"] if x["fraction"] == 0.5), None)
    peer_half = next((x for x in r["fastapi_open_loop"] if x["fraction"] == 0.5), None)
    floor = r["batcher"]["create-wide"]
    floor_half = next((x for x in r["batcher_open_loop"] if x["fraction"] == 0.5), None)
    return {
        "create_vs_batcher_throughput": round(of["create-wide"]["rps"] / floor["rps"], 2),
        "create_p99_batcher_ms": floor["p99_ms"],
        "batcher_open_loop_p99_at_half_max_ms": floor_half["p99_ms"] if floor_half else None,
        # CPU time per order, server and PostgreSQL apart: the cost figure a noisy machine moves least.
        "create_cpu_us_per_order": _cpu_per_order(of["create-wide"]),
        "batcher_cpu_us_per_order": _cpu_per_order(floor),
        "create_vs_fastapi_throughput": round(of["create-wide"]["rps"] / r["fastapi"]["create-wide"]["rps"], 2),
        "create_p99_orderfast_ms": of["create-wide"]["p99_ms"],
        "create_p99_fastapi_ms": r["fastapi"]["create-wide"]["p99_ms"],
        "create_vs_pgbench_one_per_txn": round(of["create-wide"]["rps"] / r["pgbench"]["tps"], 2),
        "hot_p99_ms": of["create-hot"]["p99_ms"],
        "hot_oversold": of["create-hot"]["audit"]["oversold"],
        "quote_vs_bare_granian": round(of["quote"]["rps"] / r["bare_granian"]["rps"], 2),
        "create_open_loop_p99_at_half_max_ms": half["p99_ms"] if half else None,
        "fastapi_open_loop_p99_at_half_max_ms": peer_half["p99_ms"] if peer_half else None,
    }


def _cpu_per_order(run: dict[str, Any]) -> dict[str, float]:
    return {
        "server": round(run["server_cores"] / run["rps"] * 1e6),
        "postgres": round(run["postgres_cores"] / run["rps"] * 1e6),
    }


# -- report --------------------------------------------------------------------------------------

GOALS = [
    (
        "create-order throughput vs the featureless batcher",
        "create_vs_batcher_throughput",
        "≥ 1.25x",
        lambda v: v >= 1.25,
    ),
    ("create-order throughput vs the FastAPI peer", "create_vs_fastapi_throughput", "≥ 5x", lambda v: v >= 5),
    ("create-order vs pgbench, one order per transaction", "create_vs_pgbench_one_per_txn", "≥ 2x", lambda v: v >= 2),
    ("hot-SKU create-order P99 at the closed-loop maximum", "hot_p99_ms", "≤ 30 ms", lambda v: v <= 30),
    ("quote vs the bare Granian floor", "quote_vs_bare_granian", "≥ 0.5x", lambda v: v >= 0.5),
    (
        "create-order P99, open loop at half the maximum",
        "create_open_loop_p99_at_half_max_ms",
        "≤ 10 ms",
        lambda v: v <= 10,
    ),
]


def markdown(r: dict[str, Any], command: str) -> str:
    m, db = r["machine"], r["database"]
    out = [
        f"# orderfast load harness — {r['mode']} run, {r['started']}",
        "",
        f"`{command}` on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}; PostgreSQL {db['postgres']} (synchronous_commit={db['synchronous_commit']}, "
        f"fsync={db['fsync']}) on the same machine. Server, database and load generator share the cores.",
        "",
        "## Goals",
        "",
        "| goal | target | measured | met |",
        "|---|---|---:|---|",
    ]
    for label, key, target, check in GOALS:
        value = r["ratios"][key]
        shown = "—" if value is None else (f"{value}x" if "vs" in key else f"{value:.1f} ms")
        out.append(f"| {label} | {target} | {shown} | {'—' if value is None else ('yes' if check(value) else 'no')} |")
    out += [
        "",
        f"Hot SKUs oversold: **{'YES' if r['ratios']['hot_oversold'] else 'no'}** "
        f"(units sold per hot SKU: {r['orderfast']['create-hot']['audit']['sold']}).",
        "",
        "## Closed loop (wrk, maximum throughput; median of the runs)",
        "",
        "| system | scenario | req/s | P50 ms | P90 ms | P99 ms | P99.9 ms | max ms | non-2xx | server cores | "
        "PostgreSQL cores | generator cores | RSS per worker MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [("orderfast", k, v) for k, v in r["orderfast"].items()]
    rows += [
        ("FastAPI peer", "create-wide", r["fastapi"]["create-wide"]),
        ("featureless batcher", "create-wide", r["batcher"]["create-wide"]),
        ("bare Granian", "fixed body", r["bare_granian"]),
    ]
    for system, scenario, v in rows:
        out.append(
            f"| {system} | {scenario} | {v['rps']:.0f} | {v['p50_ms']:.1f} | {v['p90_ms']:.1f} | {v['p99_ms']:.1f} | "
            f"{v['p999_ms']:.1f} | {v['max_ms']:.1f} | {v['non2xx']} | {v['server_cores']} | {v['postgres_cores']} | "
            f"{v['generator_cores']} | {', '.join(str(x) for x in v['rss_mib'])} |"
        )
    pg = r["pgbench"]
    mine, floor = r["ratios"]["create_cpu_us_per_order"], r["ratios"]["batcher_cpu_us_per_order"]
    out += [
        "",
        f"CPU time per create-order at the closed-loop maximum (µs, server / PostgreSQL): orderfast "
        f"**{mine['server']} / {mine['postgres']}**, the featureless batcher **{floor['server']} / "
        f"{floor['postgres']}** (P99 {r['ratios']['create_p99_orderfast_ms']:.1f} vs "
        f"{r['ratios']['create_p99_batcher_ms']:.1f} ms).",
        "",
        f"pgbench, the same transaction one order at a time (`bench/pgbench_create.sql`, 32 clients): "
        f"**{pg['tps']:.0f} tps** ({pg['machine_cores']} cores busy on the machine, pgbench included).",
        "",
        "## Open loop (bench/openloop.py: fixed rate, latency from the intended send time)",
        "",
        "| system | % of its max | target req/s | achieved req/s | P50 ms | P90 ms | P99 ms | P99.9 ms | max ms | "
        "non-2xx | errors | server cores | PostgreSQL cores | generator cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system, key in (
        ("orderfast", "orderfast_open_loop"),
        ("FastAPI peer", "fastapi_open_loop"),
        ("featureless batcher", "batcher_open_loop"),
    ):
        for v in r[key]:
            out.append(
                f"| {system} | {v['fraction']:.0%} | {v['target_rps']:.0f} | {v['achieved_rps']:.0f} | "
                f"{v['p50_ms']:.1f} | {v['p90_ms']:.1f} | {v['p99_ms']:.1f} | {v['p999_ms']:.1f} | "
                f"{v['max_ms']:.1f} | {v['non2xx']} | {v['errors']} | {v['server_cores']} | {v['postgres_cores']} | "
                f"{v['generator_cores']} |"
            )
    check = r.get("oha_check")
    if check:
        out += [
            "",
            f"Generator check, quote at {check['rate']:.0f} req/s for both: oha (`-q`, latency correction) P50 "
            f"{check['oha']['p50_ms']:.2f} ms / P99 {check['oha']['p99_ms']:.2f} ms; bench/openloop.py P50 "
            f"{check['openloop']['p50_ms']:.2f} ms / P99 {check['openloop']['p99_ms']:.2f} ms.",
        ]
    return "\n".join(out) + "\n"


def plot(r: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for system, key, colour in (
        ("orderfast", "orderfast_open_loop", "tab:blue"),
        ("FastAPI peer", "fastapi_open_loop", "tab:orange"),
        ("featureless batcher", "batcher_open_loop", "tab:green"),
    ):
        pts = sorted(r[key], key=lambda v: v["achieved_rps"])
        xs = [v["achieved_rps"] for v in pts]
        ax.plot(xs, [v["p50_ms"] for v in pts], "o--", color=colour, label=f"{system} P50")
        ax.plot(xs, [v["p99_ms"] for v in pts], "s-", color=colour, label=f"{system} P99")
    ax.set_xlabel("achieved create-order throughput (req/s), open loop")
    ax.set_ylabel("latency from intended send time (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(f"create-order latency vs throughput — {r['machine']['cores']} cores, PostgreSQL on the same host")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="under 2 minutes: fewer scenarios, short single runs")
    args = ap.parse_args()
    for tool in ("wrk", "pgbench"):
        if shutil.which(tool) is None:
            sys.exit(
                f"{tool} is not installed (Debian: apt-get install {'wrk' if tool == 'wrk' else 'postgresql-contrib'})"
            )
    mode, label = (QUICK, "quick") if args.quick else (FULL, "full")
    began = time.monotonic()
    report = run(mode, label)
    report["wall_s"] = round(time.monotonic() - began, 1)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    base = out / f"harness-{label}-{stamp}"
    command = "python bench/harness.py" + (" --quick" if args.quick else "")
    base.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report, command)
    if plot(report, base.with_suffix(".png")):
        text += f"\n![latency vs throughput]({base.with_suffix('.png').name})\n"
    base.with_suffix(".md").write_text(text)
    print(text)
    print(f"written {base}.{{json,md,png}} in {report['wall_s']} s")


if __name__ == "__main__":
    main()
