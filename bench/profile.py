"""py-spy flame graph of a worker under load: `make profile` (or `python bench/profile.py`).

Starts one Granian worker (on the embedded store, or `--store postgres` on a fresh PostgreSQL
database seeded as bench/harness.py seeds it), drives it with wrk (quotes by default: the pure CPU
hot path; `--scenario create` for create-order), and records the worker with `py-spy record
--native`, so Rust frames from `orderfast._core` appear by name (the release profile keeps line
tables). Writes bench/results/profile-<scenario>[-postgres].svg.

    python bench/profile.py --scenario create --store postgres --connections 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from tests.e2e.conftest import Server  # noqa: E402


def worker_pid(server: Server) -> int:
    assert server.proc is not None
    children = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(children[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=["quote", "create"], default="quote")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            sys.exit(f"{tool} is not installed")
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    suffix = "-postgres" if args.store == "postgres" else ""
    out = ROOT / "bench" / "results" / f"profile-{args.scenario}{suffix}.svg"
    out.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "ORDERFAST_RATELIMIT_USER": "1000000000/1",
            "ORDERFAST_RATELIMIT_IP": "1000000000/1",
            "ORDERFAST_TAX_RATES": "standard=20",
        }
        dsn = None
        if args.store == "postgres":
            dsn = asyncio.run(harness.fresh_database(f"orderfast_profile_{os.getpid()}"))
            env["ORDERFAST_DATABASE_URL"] = dsn
        server = Server(Path(tmp), env, workers=1)
        if dsn is not None:
            server.cli("migrate")
            asyncio.run(harness.seed(dsn))  # the wide catalog and an order history, as the harness has
        server.start()
        try:
            with server.client("admin", "admin") as admin:
                for i in range(5):
                    admin.put(
                        f"/v1/products/P-{i}",
                        json={
                            "name": f"P{i}",
                            "price": "12.34",
                            "currency": "USD",
                            "stock": 10**9,
                            "tax_class": "standard",
                        },
                    ).raise_for_status()
            body = Path(tmp) / "body.json"
            skus = [f"W-{i:05d}" for i in (11, 2222, 4444)] if dsn else [f"P-{i}" for i in range(5)]
            body.write_bytes(orjson.dumps({"currency": "USD", "items": [{"sku": s, "quantity": 2} for s in skus]}))
            mode = "quote-file" if args.scenario == "quote" else "create-file"
            pid = worker_pid(server)
            wrk = subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{args.connections}",
                    f"-d{args.duration + 4}s",
                    "-s",
                    str(ROOT / "bench" / "scenario.lua"),
                    server.base_url,
                    "--",
                    server.token("profiler"),
                    mode,
                    "0",
                    str(body),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(2)  # let the load reach a steady state before sampling (not a synchronisation)
            subprocess.run(
                [
                    py_spy,
                    "record",
                    "--native",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(args.duration),
                    "--rate",
                    "250",
                    "--format",
                    "flamegraph",
                    "--output",
                    str(out),
                ],
                check=True,
                env={**os.environ},
            )
            wrk.wait()
        finally:
            server.stop()
            if dsn is not None:
                asyncio.run(harness._drop(dsn))
    print(f"flame graph: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
