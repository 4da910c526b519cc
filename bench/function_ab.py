"""Two definitions of the database's functions side by side, on one server: which costs PostgreSQL
less per order.

Starts a fresh PostgreSQL database seeded as ``bench/harness.py`` seeds it and one orderfast worker
(admission off), then, for ``--rounds`` rounds, applies each SQL file in turn (``CREATE OR REPLACE
FUNCTION …``: the pooled connections pick the new body up on their next call), lets 2 s of load at
half the rate pass, and runs ``--duration`` seconds of create-orders at ``--rate``: 2xx P50/P99, the
mean group-commit batch, and server and PostgreSQL CPU time per order. A file named ``current``
stands for the function as the migrations define it (the body of
``python/orderfast/store/migrations/postgres/0006_apply_create_plans.sql``, replaced in place).

    python bench/function_ab.py current my-draft.sql --rate 3000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, openloop, overload  # noqa: E402
from bench.side_by_side import BATCH, batches  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402

MIGRATION = ROOT / "python" / "orderfast" / "store" / "migrations" / "postgres" / "0006_apply_create_plans.sql"


def definition(name: str) -> str:
    if name != "current":
        return Path(name).read_text()
    text = MIGRATION.read_text()
    body = text[text.index("CREATE FUNCTION orderfast_create_orders(") :]
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


async def apply(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def step(target: harness.Target, make: Callable[[int], bytes], name: str, rate: float, duration: float) -> None:
    openloop.run_phases_blocking(target.url, [(rate / 2, 2)], make, connections=overload.CONNECTIONS)
    before = batches(target.url)
    with harness.cpu_meter(target) as cpu:
        (r,) = openloop.run_phases_blocking(target.url, [(rate, duration)], make, connections=overload.CONNECTIONS)
    after = batches(target.url)
    count, items = (after[k] - before.get(k, 0.0) for k in reversed(BATCH))
    per_s = max(items / r.duration, 1.0)
    server_us, postgres_us = (1e6 * cpu[k] / per_s for k in ("server_cores", "postgres_cores"))
    print(
        f"{name[-30:]:30s} 2xx P50 {r.ok_percentile_ms(50):6.1f} ms, P99 {r.ok_percentile_ms(99):6.1f} ms, "
        f"batch {items / max(count, 1.0):5.1f}, CPU per order: server {server_us:.0f} us, "
        f"PostgreSQL {postgres_us:.0f} us",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("definitions", nargs="+", help="SQL files, or current")
    ap.add_argument("--rate", type=float, default=3000)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sql = {name: definition(name) for name in args.definitions}
    token = mint_token(harness.SECRET, "bench-user", ttl=86_400)
    print(f"python bench/function_ab.py {' '.join(sys.argv[1:])} on {harness.machine()}", flush=True)
    database = harness.prepared_database(f"orderfast_fn_{os.getpid()}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        database as (dsn, _),
        overload.server(dsn, Path(tmp) / "s", 1, admission=False) as target,
    ):
        make = overload.requests(target.url.removeprefix("http://"), token)
        openloop.run_phases_blocking(target.url, [(args.rate / 2, 5)], make, connections=overload.CONNECTIONS)
        for _ in range(args.rounds):
            for name, text in sql.items():
                asyncio.run(apply(dsn, text))
                step(target, make, name, args.rate, args.duration)
        asyncio.run(apply(dsn, definition("current")))


if __name__ == "__main__":
    main()
