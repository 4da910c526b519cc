"""Horizontal scaling on one machine: 1, 2 and 3 orderfast instances behind HAProxy, sharing the two
cores, one PostgreSQL and one Redis — the cost of coordination, not a speed-up (there are no more
cores to add).

Each configuration is N instances (separate ``orderfast serve`` processes) of W Granian workers,
round-robin behind one HAProxy, with the shared rate limits on Redis as several instances need
them. The same fresh database (seeded as ``bench/harness.py`` seeds it) and the same load for each:
wrk, create-order with 3 lines over the wide catalog, 64 connections, a warm-up, then 3 runs (the
median reported), with the CPU time per order of the servers (instances and HAProxy), PostgreSQL
and Redis apart — the figure a noisy machine moves least — the WAL written and the orders per
committed batch. The servers run no relay; at the end one ``orderfast relay`` publishes the backlog
they left, for the relay's own rate and cost.

    python bench/instances.py                 # 1x2 (the usual single instance), 1x1, 2x1, 3x1: ~5 min
    python bench/instances.py --configs 1x2,2x1 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402

REDIS_URL = os.environ.get("ORDERFAST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

HAPROXY = """global
    maxconn 4096
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse always
frontend front
    bind 127.0.0.1:{port}
    default_backend orderfast
backend orderfast
    balance roundrobin
{servers}
"""


@dataclass
class Group(harness.Target):
    """The instances and HAProxy as one target: ``tree`` is every process that serves."""

    members: list[harness.Target] = field(default_factory=list)
    extra: list[psutil.Process] = field(default_factory=list)

    def tree(self) -> list[psutil.Process]:
        return [p for m in self.members for p in m.tree()] + self.extra


def wal_and_orders(dsn: str) -> tuple[int, int]:
    """The primary's WAL position (bytes) and how many orders there are."""

    async def read() -> tuple[int, int]:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, (SELECT count(*) FROM orders)"
            )
            return int(row[0]), int(row[1])
        finally:
            await conn.close()

    return asyncio.run(read())


def batches(group: Group) -> tuple[float, float]:
    """Orders written and batches committed so far, summed over the instances (their /metrics)."""
    orders = count = 0.0
    for member in group.members:
        text = httpx.get(member.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("orderfast_group_commit_batch_size_sum"):
                orders += float(line.rsplit(" ", 1)[1])
            elif line.startswith("orderfast_group_commit_batch_size_count"):
                count += float(line.rsplit(" ", 1)[1])
    return orders, count


def outbox_counts(dsn: str) -> tuple[int, int]:
    """(published, unpublished) events in the outbox."""

    async def read() -> tuple[int, int]:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE published_at IS NOT NULL), count(*) FILTER (WHERE published_at IS NULL) "
                "FROM outbox"
            )
            return int(row[0]), int(row[1])
        finally:
            await conn.close()

    return asyncio.run(read())


def relay_drain(dsn: str, workdir: Path, seconds: float) -> dict[str, Any]:
    """One ``orderfast relay`` publishing the backlog the runs left (the servers run no relay) to
    Redis Streams for ``seconds``: events/s and CPU per event of the relay, PostgreSQL and Redis."""
    import redis

    prefix = f"bench-relay:{os.getpid()}:"
    env = {
        **os.environ,
        "ORDERFAST_DATABASE_URL": dsn,
        "ORDERFAST_DATA_DIR": str(workdir / "relay"),
        "ORDERFAST_REDIS_URL": REDIS_URL,
        "ORDERFAST_STREAM_PREFIX": prefix,
        "ORDERFAST_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [str(harness.BIN / "orderfast"), "relay"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        published, backlog = outbox_counts(dsn)
        deadline = time.monotonic() + 30
        while outbox_counts(dsn)[0] == published:  # until it publishes: start-up is not throughput
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the relay published nothing")
            time.sleep(0.1)
        tree = [psutil.Process(proc.pid)]
        pg, rd = harness._postgres(), redis_server()
        c0, p0, r0 = harness._cpu(tree), harness._cpu(pg), harness._cpu(rd)
        wal0 = wal_and_orders(dsn)[0]
        done0, t0 = outbox_counts(dsn)[0], time.monotonic()
        time.sleep(seconds)  # a fixed measurement window (a benchmark, not a test)
        done1, left = outbox_counts(dsn)
        wal1 = wal_and_orders(dsn)[0]
        wall = time.monotonic() - t0
        c1, p1, r1 = harness._cpu(tree), harness._cpu(pg), harness._cpu(rd)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    events = max(1, done1 - done0)

    def per_event(a: dict[int, float], b: dict[int, float]) -> float:
        return round(sum(v - a.get(k, 0.0) for k, v in b.items()) / events * 1e6, 1)

    return {
        "backlog": backlog,
        "events_per_s": round(events / wall),
        "still_pending": left,
        "wal_bytes_per_event": round((wal1 - wal0) / events),
        "cpu_us_per_event": {"relay": per_event(c0, c1), "postgres": per_event(p0, p1), "redis": per_event(r0, r1)},
    }


def redis_server() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")]


@contextmanager
def balanced(dsn: str, workdir: Path, instances: int, workers: int) -> Iterator[Group]:
    with ExitStack() as stack:
        members = []
        for n in range(instances):
            port = harness.free_port()
            env = {
                "ORDERFAST_DATABASE_URL": dsn,
                "ORDERFAST_DATA_DIR": str(workdir / f"i{n}"),
                "ORDERFAST_JWT_SECRET": harness.SECRET,
                "ORDERFAST_RATELIMIT_USER": "1000000000/1",
                "ORDERFAST_RATELIMIT_IP": "1000000000/1",
                "ORDERFAST_REDIS_URL": REDIS_URL,
                "ORDERFAST_RELAY_IN_PROCESS": "false",
                "ORDERFAST_LOG_LEVEL": "warning",
            }
            cmd = [str(harness.BIN / "orderfast"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            cmd += ["--workers", str(workers)]
            members.append(stack.enter_context(harness.serving(f"orderfast-{n}", cmd, env, port, "/readyz")))
        port = harness.free_port()
        servers = "\n".join(
            f"    server s{n} {m.url.removeprefix('http://')} maxconn 1000" for n, m in enumerate(members)
        )
        proxy = stack.enter_context(harness.haproxy(HAPROXY.format(port=port, servers=servers), port))
        yield Group(f"{instances}x{workers}", f"http://127.0.0.1:{port}", members[0].proc, members, [proxy])


def measure(configs: list[tuple[int, int]], mode: harness.Mode, relay_seconds: float) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": harness.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": mode.__dict__,
        "runs": {},
    }
    token = mint_token(harness.SECRET, "bench-user", ttl=86_400)
    redis = redis_server()
    database = harness.prepared_database(f"orderfast_instances_{os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp, database as (dsn, seeded):
        report["database"] = seeded
        for instances, workers in configs:
            with balanced(dsn, Path(tmp), instances, workers) as group:
                r0 = harness._cpu(redis)
                began = time.monotonic()
                wal0, orders0 = wal_and_orders(dsn)
                batched0 = batches(group)
                closed = harness.closed_loop(mode, group, token, "create-wide", 3)
                batched1 = batches(group)
                wal1, orders1 = wal_and_orders(dsn)
                # Redis over the whole measurement (warm-up included), as cores.
                r1 = harness._cpu(redis)
                redis_cores = sum(v - r0.get(k, 0.0) for k, v in r1.items()) / (time.monotonic() - began)
                run = {
                    **closed,
                    "instances": instances,
                    "workers": workers,
                    "redis_cores": round(redis_cores, 3),
                    # Over the warm-up and every run: WAL written per order created.
                    "wal_bytes_per_order": round((wal1 - wal0) / max(1, orders1 - orders0)),
                    "orders_per_batch": round((batched1[0] - batched0[0]) / max(1.0, batched1[1] - batched0[1]), 1),
                    "cpu_us": {
                        **harness._cpu_per_order(closed),
                        "redis": round(redis_cores / closed["rps"] * 1e6, 1),
                    },
                }
                report["runs"][f"{instances}x{workers}"] = run
                print(f"  {instances} instance(s) x {workers} worker(s): {harness._fmt(closed)}", flush=True)
        if relay_seconds > 0:
            report["relay"] = relay_drain(dsn, Path(tmp), relay_seconds)
            print(f"  relay: {report['relay']}", flush=True)
    return report


def markdown(r: dict[str, Any], command: str) -> str:
    m = r["machine"]
    out = [
        f"# Instances behind HAProxy — {r['started']}",
        "",
        f"`{command}` on {m['cpu']}, {m['cores']} cores; PostgreSQL {r['database']['postgres']} "
        f"(synchronous_commit={r['database']['synchronous_commit']}) and Redis on the same machine; wrk, "
        "HAProxy, the instances, PostgreSQL and Redis share the cores. Create-order, 3 lines, wide catalog, "
        f"{r['mode']['connections']} connections, median of {r['mode']['runs']} runs of {r['mode']['duration']} s.",
        "",
        "| instances x workers | req/s | P50 ms | P99 ms | non-2xx | cores: servers+HAProxy / PostgreSQL / Redis | "
        "CPU µs per order: servers+HAProxy / PostgreSQL / Redis | WAL bytes per order | orders per batch |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for name, run in r["runs"].items():
        cpu = run["cpu_us"]
        out.append(
            f"| {name} | {run['rps']:.0f} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {run['non2xx']} | "
            f"{run['server_cores']} / {run['postgres_cores']} / {run['redis_cores']} | "
            f"{cpu['server']} / {cpu['postgres']} / {cpu['redis']} | {run['wal_bytes_per_order']} | "
            f"{run['orders_per_batch']} |"
        )
    if "relay" in r:
        rl = r["relay"]
        cpu = rl["cpu_us_per_event"]
        out += [
            "",
            f"One `orderfast relay` publishing the backlog the runs left ({rl['backlog']} events) to Redis Streams: "
            f"**{rl['events_per_s']} events/s**, CPU per event relay / PostgreSQL / Redis {cpu['relay']} / "
            f"{cpu['postgres']} / {cpu['redis']} µs, WAL {rl.get('wal_bytes_per_event', '?')} bytes per event "
            f"({rl['still_pending']} still pending at the end of the window).",
        ]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="1x2,1x1,2x1,3x1", help="comma-separated INSTANCESxWORKERS")
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--relay", type=float, default=20, help="seconds of relay draining the backlog (0: none)")
    args = parser.parse_args()
    configs = [(int(c.split("x")[0]), int(c.split("x")[1])) for c in args.configs.split(",")]
    mode = harness.Mode(
        warmup=10,
        duration=args.duration,
        runs=args.runs,
        connections=64,
        scenarios=(("create-wide", 3),),
        fractions=(),
        open_duration=0,
    )
    report = measure(configs, mode, args.relay)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    base = ROOT / "bench" / "results" / f"instances-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    command = "python bench/instances.py" + ("" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:]))
    text = markdown(report, command)
    base.with_suffix(".md").write_text(text)
    print(text)
    print(f"written {base}.{{json,md}}")


if __name__ == "__main__":
    main()
