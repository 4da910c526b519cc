"""Would a shared Redis cache in front of order reads pay on this machine? The two ways a worker can
answer ``GET /v1/orders/{id}``, side by side in one process, alternating rounds:

* ``database``: what it does now — a pooled asyncpg connection, the order and its lines in one query
  (``store/postgres/orders.get_order``), the document rendered (``order_json``);
* ``redis hit``: what a cache hit would cost at best — one ``GET`` of the document, already rendered,
  from Redis (redis-py's asyncio client, as the service uses it).

Each round runs ``--concurrency`` tasks reading random orders of the harness's seeded history for
``--duration`` seconds; reported per read: this process's CPU (the worker's share), PostgreSQL's
and Redis's, and reads/s. A cache only helps throughput if a hit costs the machine (worker plus
its server) clearly less than the database read, and only helps latency if a hit is faster; a miss
costs both plus the fill. The HTTP work around a read (~70-100 µs of the worker per request,
``bench/request_cost.py``) is the same either way.

Then the same question end to end (``--http``, on by default): orderfast with the cache off and on,
alternating (Redis configured in both, for the shared rate limits; only the cache differs), wrk's
``get`` (one order read by every connection: a hot order) and ``mix`` (60 % of it reads of that
order) scenarios of ``bench/harness.py``, 64 connections.

    python bench/read_cache.py            # ~4 minutes
    python bench/read_cache.py --no-http  # the in-process rounds only, ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402

from orderfast.domain.orders import order_json  # noqa: E402
from orderfast.store.postgres import orders  # noqa: E402

REDIS_URL = os.environ.get("ORDERFAST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = f"bench-read-cache:{os.getpid()}:"


async def rounds(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    pool = await asyncpg.create_pool(dsn, min_size=8, max_size=8)
    cache = aioredis.Redis.from_url(REDIS_URL)
    ids = [str(r[0]) for r in await pool.fetch("SELECT id FROM orders")]
    # The cache filled with every document, as a warm cache would hold them.
    for start in range(0, len(ids), 1000):
        async with pool.acquire() as conn:
            docs = [order_json(o) for o in [await orders.get_order(conn, i) for i in ids[start : start + 1000]] if o]
        await cache.mset({PREFIX + i: d for i, d in zip(ids[start : start + 1000], docs, strict=True)})
    pg = harness._postgres()
    rd = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")]

    async def from_database(order_id: str) -> bytes:
        async with pool.acquire() as conn:
            order = await orders.get_order(conn, order_id)
        assert order is not None
        return order_json(order)

    async def from_redis(order_id: str) -> bytes:
        doc = await cache.get(PREFIX + order_id)
        assert doc is not None
        return bytes(doc)

    async def one(read: Any) -> dict[str, float]:
        done = 0
        stop = time.monotonic() + args.duration
        rng = random.Random(1)

        async def task() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await read(rng.choice(ids))
                done += 1

        pg0, rd0, me0, wall0 = harness._cpu(pg), harness._cpu(rd), time.process_time(), time.monotonic()
        await asyncio.gather(*(task() for _ in range(args.concurrency)))
        wall = time.monotonic() - wall0
        pg1, rd1, me1 = harness._cpu(pg), harness._cpu(rd), time.process_time()

        def per_read(before: dict[int, float], after: dict[int, float]) -> float:
            return round(sum(v - before.get(k, 0.0) for k, v in after.items()) / done * 1e6, 1)

        return {
            "reads_per_s": round(done / wall),
            "worker_us": round((me1 - me0) / done * 1e6, 1),
            "postgres_us": per_read(pg0, pg1),
            "redis_us": per_read(rd0, rd1),
        }

    out: dict[str, list[dict[str, float]]] = {"database": [], "redis hit": []}
    try:
        for n in range(args.rounds):
            for name, read in (("database", from_database), ("redis hit", from_redis)):
                result = await one(read)
                out[name].append(result)
                print(f"  round {n + 1} {name}: {result}", flush=True)
    finally:
        keys = [PREFIX + i for i in ids]
        for start in range(0, len(keys), 5000):
            await cache.delete(*keys[start : start + 5000])
        await cache.aclose()
        await pool.close()
    return out


HTTP_MODE = harness.Mode(
    warmup=5,
    duration=10,
    runs=1,
    connections=64,
    scenarios=(("get", 3), ("mix", 3)),
    fractions=(),
    open_duration=0,
)


def http_rounds(dsn: str, rounds: int) -> dict[str, list[dict[str, Any]]]:
    import tempfile

    import httpx

    from orderfast.http.auth import mint_token

    token = mint_token(harness.SECRET, "bench-user", ttl=86_400)
    # Redis in both (so both pay the shared rate limiter's call per request); only the cache differs.
    variants = {
        "cache off": {"ORDERFAST_REDIS_URL": REDIS_URL},
        "cache on": {"ORDERFAST_REDIS_URL": REDIS_URL, "ORDERFAST_READ_CACHE": "true"},
    }
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            for name, env in variants.items():
                extra = {**env, "ORDERFAST_RELAY_IN_PROCESS": "false"}
                with harness.orderfast(dsn, Path(tmp) / f"{n}-{name}", **extra) as target:
                    with httpx.Client(base_url=target.url, headers={"authorization": f"Bearer {token}"}) as c:
                        first = c.post(
                            "/v1/orders",
                            json={"currency": "USD", "items": [{"sku": "W-00001", "quantity": 1}]},
                            headers={"idempotency-key": f"read-cache-{n}-{name.replace(' ', '-')}"},
                        )
                        first.raise_for_status()
                        order_id = first.json()["id"]
                    result: dict[str, Any] = {}
                    for scenario, lines in HTTP_MODE.scenarios:
                        run = harness.closed_loop(HTTP_MODE, target, token, scenario, lines, order_id)
                        result[scenario] = {**run, "cpu_us": harness._cpu_per_order(run)}
                        print(f"  round {n + 1} {name} {scenario}: {harness._fmt(run)}", flush=True)
                    out[name].append(result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": harness.machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with harness.prepared_database(f"orderfast_read_cache_{os.getpid()}") as (dsn, seeded):
        report["database"] = seeded
        report["rounds"] = asyncio.run(rounds(dsn, args))
        if args.http:
            report["http"] = http_rounds(dsn, 2)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = ROOT / "bench" / "results" / f"read-cache-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
