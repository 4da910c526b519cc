"""What metrics cost: create-order (PostgreSQL) and quote through a real server with metrics on and
off, side by side in one sitting, in ABBA order, as ratios (the machine is shared and noisy).

    python bench/metrics_overhead.py --rounds 2 --duration 10

One Granian worker, so the cost per request is not diluted; wrk closed loop on loopback. The goal
(issue 13): under 3 % of throughput and 0.5 ms of P99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402
from bench.load import run_wrk, seed  # noqa: E402
from tests.e2e.conftest import Server  # noqa: E402


def measure(metrics: bool, args: argparse.Namespace, tmp: Path, body: Path) -> dict[str, dict[str, float]]:
    env = {
        "ORDERFAST_RATELIMIT_USER": "1000000000/1",
        "ORDERFAST_RATELIMIT_IP": "1000000000/1",
        "ORDERFAST_METRICS": "true" if metrics else "false",
        "ORDERFAST_DATABASE_URL": asyncio.run(harness.fresh_database(f"orderfast_metrics_{os.getpid()}")),
    }
    server = Server(Path(tempfile.mkdtemp(dir=tmp)), env, workers=1)
    server.start()
    try:
        seed(server, 20)
        out = {}
        for scenario in ("create-file", "quote-file"):
            run_wrk(server, body, args.warmup, args.connections, 1, scenario)
            r = run_wrk(server, body, args.duration, args.connections, 1, scenario)
            out[scenario] = {"rps": r["requests"] / (r["duration_us"] / 1e6), "p99_ms": r["p99_us"] / 1000}
        return out
    finally:
        server.stop()
        asyncio.run(harness._drop(env["ORDERFAST_DATABASE_URL"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="ABBA blocks")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    runs: dict[bool, list[dict[str, dict[str, float]]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_bytes(
            orjson.dumps({"currency": "USD", "items": [{"sku": f"BENCH-{i}", "quantity": 1} for i in range(3)]})
        )
        for _ in range(args.rounds):
            for metrics in (True, False, False, True):  # ABBA: drift cancels out
                result = measure(metrics, args, Path(tmp), body)
                runs[metrics].append(result)
                print(
                    ("on " if metrics else "off"),
                    {k: {m: round(v, 2) for m, v in d.items()} for k, d in result.items()},
                    flush=True,
                )
    print()
    print("| scenario | throughput on/off | P99 on - off (ms) |")
    print("|---|---:|---:|")
    for scenario in ("create-file", "quote-file"):
        on = [r[scenario] for r in runs[True]]
        off = [r[scenario] for r in runs[False]]
        ratio = statistics.median(a["rps"] for a in on) / statistics.median(b["rps"] for b in off)
        p99 = statistics.median(a["p99_ms"] for a in on) - statistics.median(b["p99_ms"] for b in off)
        print(f"| {scenario.removesuffix('-file')} | {ratio:.3f} | {p99:+.2f} |")


if __name__ == "__main__":
    main()
