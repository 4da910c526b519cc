"""Quick HTTP load measurement: create-order through a real Granian server, per store.

Starts ``orderfast serve`` on loopback for each store, seeds a catalog with ample stock, warms up,
then runs wrk (closed loop) with a unique Idempotency-Key per request. Writes JSON and Markdown to
bench/results/. Closed-loop wrk latencies undercount queueing (coordinated omission): for latency
as clients see it, and for the peers, use bench/harness.py.

    python bench/load.py --store sqlite --store postgres --duration 15 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from tests.e2e.conftest import Server  # noqa: E402  (reuses the real-server fixture code)


def seed(server: Server, skus: int) -> None:
    with server.client("bench-admin", "admin") as admin:
        for i in range(skus):
            r = admin.put(
                f"/v1/products/BENCH-{i}",
                json={"name": f"Bench {i}", "price": "12.34", "currency": "USD", "stock": 1_000_000_000},
            )
            r.raise_for_status()


def run_wrk(
    server: Server, body_file: Path, duration: int, connections: int, threads: int, scenario: str = "create-file"
) -> dict[str, float]:
    token = server.token("bench-user")
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(ROOT / "bench" / "scenario.lua"),
            server.base_url,
            "--",
            token,
            scenario,
            "0",
            str(body_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", action="append", choices=["sqlite", "postgres"])
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lines", type=int, default=3, help="lines per order")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    stores = args.store or ["sqlite", "postgres"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(
            orjson.dumps(
                {
                    "currency": "USD",
                    "items": [{"sku": f"BENCH-{i}", "quantity": 1} for i in range(args.lines)],
                }
            )
        )
        for store in stores:
            env = {"ORDERFAST_RATELIMIT_USER": "1000000000/1", "ORDERFAST_RATELIMIT_IP": "1000000000/1"}
            if store == "postgres":
                env["ORDERFAST_DATABASE_URL"] = asyncio.run(harness.fresh_database(f"orderfast_bench_{os.getpid()}"))
            server = Server(Path(tempfile.mkdtemp(dir=tmp)), env, workers=args.workers)
            server.start()
            try:
                seed(server, max(args.lines, 20))
                httpx.get(server.base_url + "/readyz").raise_for_status()
                run_wrk(server, body_file, args.warmup, args.connections, args.threads)
                r = run_wrk(server, body_file, args.duration, args.connections, args.threads)
            finally:
                server.stop()
                if store == "postgres":  # a database per run: gone with its run
                    asyncio.run(harness._drop(env["ORDERFAST_DATABASE_URL"]))
            rps = r["requests"] / (r["duration_us"] / 1e6)
            rows.append(
                {
                    "store": store,
                    "rps": round(rps),
                    "p50_ms": r["p50_us"] / 1000,
                    "p90_ms": r["p90_us"] / 1000,
                    "p99_ms": r["p99_us"] / 1000,
                    "p999_ms": r["p999_us"] / 1000,
                    "max_ms": r["max_us"] / 1000,
                    "non2xx": r["non2xx"],
                    "socket_errors": r["socket_errors"],
                }
            )
    machine = f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    header = (
        f"create-order, {args.lines} lines, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s, {args.workers} Granian workers, {machine}"
    )
    table = [
        "| store | req/s | P50 ms | P90 ms | P99 ms | P99.9 ms | max ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {r['store']} | {r['rps']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
        f"{r['p999_ms']:.2f} | {r['max_ms']:.2f} | {r['non2xx']} |"
        for r in rows
    ]
    report = f"{header}\n\n" + "\n".join(table)
    print(report)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"load-{stamp}.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    (out / f"load-{stamp}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
