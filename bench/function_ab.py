"""Two definitions of the database's functions side by side, on one server: which costs PostgreSQL
less per order.

Starts a fresh PostgreSQL database seeded as ``bench/harness.py`` seeds it and one orderfast worker
(admission off), then, for ``--rounds`` rounds, applies each SQL file in turn (``CREATE OR REPLACE
FUNCTION …``: the pooled connections pick the new body up on their next call), lets 2 s of load at
half the rate pass, and runs ``--duration`` seconds of create-orders at ``--rate``: the figures of
``bench/side_by_side.py`` (2xx P50/P99, the mean batch, CPU per order of the server, its Python
threads and PostgreSQL). A file named ``current``
stands for the function as the migrations define it (its body in the latest migration that defines
it, replaced in place).

    python bench/function_ab.py current my-draft.sql --rate 3000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, openloop, overload  # noqa: E402
from bench.side_by_side import step  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402

MIGRATIONS = ROOT / "python" / "orderfast" / "store" / "migrations" / "postgres"
FUNCTION = "CREATE FUNCTION orderfast_create_orders("


def definition(name: str) -> str:
    if name != "current":
        return Path(name).read_text()
    # The latest migration that defines it; its first definition there is the one with the body (any
    # after it are the earlier signatures, kept as wrappers).
    text = next(t for p in sorted(MIGRATIONS.glob("*.sql"), reverse=True) if FUNCTION in (t := p.read_text()))
    start = text.index(FUNCTION)
    body = text[start : text.index("\n$$;", start) + len("\n$$;")]
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


async def apply(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


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
                openloop.run_phases_blocking(
                    target.url, [(args.rate / 2, 2)], make, connections=overload.CONNECTIONS
                )  # the connections' first calls of the new body, out of the figures
                step(target, make, name, args.rate, args.duration)
        asyncio.run(apply(dsn, definition("current")))


if __name__ == "__main__":
    main()
