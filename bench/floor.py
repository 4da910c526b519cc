"""orderfast against the featureless floor, side by side in one run: what every feature costs.

The floor is ``bench/peers/batcher.py`` — the least a durable create-order needs in Python: raw ASGI
on Granian, one asyncpg connection per worker, one multi-row INSERT per batch of concurrent
requests; no authentication, validation, pricing, idempotency, stock or events. Both get the same
fresh PostgreSQL database (seeded as ``bench/harness.py`` seeds it), the same Granian worker count
and the same load, one after the other:

* closed loop: wrk, create-order with 3 lines over the wide catalog, 64 connections, a 10 s
  warm-up, then 3 runs of 15 s (the median reported);
* open loop: ``bench/openloop.py`` at 50 % of each one's own closed-loop maximum, 15 s;

with the CPU time per order of the server and of PostgreSQL apart (the figure a noisy machine moves
least). Results go to ``bench/results/floor-<time>.{json,md}``.

    python bench/floor.py      # ~3 minutes
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402

MODE = harness.Mode(
    warmup=10,
    duration=15,
    runs=3,
    connections=64,
    scenarios=(("create-wide", 3),),
    fractions=(0.5,),
    open_duration=15,
)


def measure() -> dict[str, Any]:
    report: dict[str, Any] = {"machine": harness.machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    token = mint_token(harness.SECRET, "bench-user", ttl=86_400)
    database = harness.prepared_database(f"orderfast_floor_{os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp, database as (dsn, seeded):
        report["database"] = seeded
        systems = (
            ("orderfast", lambda: harness.orderfast(dsn, Path(tmp) / "orderfast")),
            ("batcher", lambda: harness.batcher_peer(dsn)),
        )
        for name, serve in systems:
            with serve() as target:
                closed = harness.closed_loop(MODE, target, token, "create-wide", 3)
                print(f"  {name}: {harness._fmt(closed)}", flush=True)
                (half,) = harness.open_loop(MODE, target, token, closed["rps"])
                report[name] = {"closed": closed, "half": half, "cpu_us": harness._cpu_per_order(closed)}
    report["ratio"] = round(report["orderfast"]["closed"]["rps"] / report["batcher"]["closed"]["rps"], 2)
    return report


def markdown(r: dict[str, Any], command: str) -> str:
    m = r["machine"]
    out = [
        f"# orderfast against the featureless floor — {r['started']}",
        "",
        f"`{command}` on {m['cpu']}, {m['cores']} cores; {harness.WORKERS} Granian workers each; PostgreSQL "
        f"{r['database']['postgres']} (synchronous_commit={r['database']['synchronous_commit']}) on the same "
        "machine; generator, servers and database share the cores.",
        "",
        f"orderfast / batcher, closed-loop create-order throughput: **{r['ratio']}x** (goal: >= 1.25x).",
        "",
        "| system | closed loop req/s | P50 ms | P99 ms | non-2xx | CPU µs per order, server / PostgreSQL | "
        "open loop at 50 %: req/s | P50 ms | P99 ms |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name in ("orderfast", "batcher"):
        c, h, cpu = r[name]["closed"], r[name]["half"], r[name]["cpu_us"]
        out.append(
            f"| {name} | {c['rps']:.0f} | {c['p50_ms']:.1f} | {c['p99_ms']:.1f} | {c['non2xx']} | "
            f"{cpu['server']} / {cpu['postgres']} | {h['achieved_rps']:.0f} | {h['p50_ms']:.1f} | {h['p99_ms']:.1f} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    report = measure()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base = ROOT / "bench" / "results" / f"floor-{stamp}"
    base.parent.mkdir(exist_ok=True)
    base.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report, "python bench/floor.py")
    base.with_suffix(".md").write_text(text)
    print(text)
    print(f"written {base}.{{json,md}}")


if __name__ == "__main__":
    main()
