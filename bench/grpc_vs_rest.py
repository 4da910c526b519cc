"""gRPC next to REST, side by side in one run: create-order and quote through ``orderfast serve``
(one Granian worker), ``orderfast serve-grpc`` (one process) and — the alternative serve-grpc was
chosen over — gRPC served from inside a Granian worker (bench/grpc_in_worker.py), all on the same
PostgreSQL database, each driven closed-loop by the same asyncio client process at the same concurrency.

Reported per operation and protocol: throughput, client-side latency (p50/p99), and the server's CPU
per request (its process tree's CPU time over the run / requests), which does not depend on how fast
the client is; then gRPC/REST ratios. Rounds alternate REST and gRPC so that drift hits both.

    .venv/bin/python bench/grpc_vs_rest.py [--duration 8] [--concurrency 32] [--rounds 2]

Writes bench/results/grpc_vs_rest.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import orjson
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, openloop  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402
from orderfast.rpc.v1 import orders_pb2 as pb  # noqa: E402
from orderfast.rpc.v1 import orders_pb2_grpc  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SKUS = [f"W-{k:05d}" for k in (11, 222, 3333)]  # three lines, as the harness's orders


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


async def closed_loop(call: Callable[[int], Awaitable[None]], concurrency: int, duration: float) -> list[float]:
    """``concurrency`` users, each calling back to back for ``duration`` seconds: latencies (s)."""
    latencies: list[float] = []
    stop = time.perf_counter() + duration
    counter = iter(range(10**12))

    async def user() -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            await call(next(counter))
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(user() for _ in range(concurrency)))
    return latencies


class Rest:
    def __init__(self, port: int, token: str, tag: str) -> None:
        self.port, self.token, self.tag = port, token, tag
        self.conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def open(self, n: int) -> None:
        for _ in range(n):
            self.conns.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def close(self) -> None:
        while not self.conns.empty():
            _, writer = self.conns.get_nowait()
            writer.close()

    def request(self, op: str, i: int) -> bytes:
        body = orjson.dumps({"currency": "USD", "items": [{"sku": s, "quantity": 1} for s in SKUS]})
        headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
        if op == "create":
            headers["idempotency-key"] = f"{self.tag}-{i}"
        path = "/v1/orders" if op == "create" else "/v1/quotes"
        return openloop.request_bytes("POST", path, f"127.0.0.1:{self.port}", headers, body)

    def caller(self, op: str) -> Callable[[int], Awaitable[None]]:
        async def call(i: int) -> None:
            reader, writer = await self.conns.get()
            writer.write(self.request(op, i))
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(openloop._content_length(head.lower()))
            assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")), head + body
            self.conns.put_nowait((reader, writer))

        return call


class Rpc:
    def __init__(self, port: int, token: str, tag: str) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = orders_pb2_grpc.OrdersStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.tag = tag
        self.items = [pb.Item(sku=s, quantity=1) for s in SKUS]

    def caller(self, op: str) -> Callable[[int], Awaitable[None]]:
        async def create(i: int) -> None:
            request = pb.CreateOrderRequest(idempotency_key=f"{self.tag}-{i}", currency="USD", items=self.items)
            await self.stub.CreateOrder(request, metadata=self.metadata)

        async def quote(i: int) -> None:
            await self.stub.Quote(pb.QuoteRequest(currency="USD", items=self.items), metadata=self.metadata)

        return create if op == "create" else quote


def summary(latencies: list[float], duration: float, cpu: float) -> dict[str, float]:
    ordered = sorted(latencies)
    n = len(ordered)
    return {
        "rps": round(n / duration, 1),
        "p50_ms": round(ordered[n // 2] * 1000, 2),
        "p99_ms": round(ordered[min(n - 1, int(n * 0.99))] * 1000, 2),
        "server_cpu_us": round(cpu / n * 1e6, 1),
    }


PROTOCOLS = ("rest", "grpc", "grpc-in-worker")


async def measure(
    args: argparse.Namespace, ports: dict[str, int], servers: dict[str, psutil.Process]
) -> dict[str, Any]:
    token = mint_token(harness.SECRET, f"bench-{uuid.uuid4().hex[:6]}")
    results: dict[str, Any] = {}
    for op in ("quote", "create"):
        rounds: dict[str, list[dict[str, float]]] = {p: [] for p in PROTOCOLS}
        for r in range(args.rounds + 1):  # round 0 warms up
            for proto in PROTOCOLS:
                tag = f"{proto}-{op}-{r}-{uuid.uuid4().hex[:6]}"
                if proto == "rest":
                    client: Any = Rest(ports[proto], token, tag)
                    await client.open(args.concurrency)
                else:
                    client = Rpc(ports[proto], token, tag)
                    await client.channel.channel_ready()
                duration = args.duration if r else 2.0
                before = cpu_seconds(servers[proto])
                latencies = await closed_loop(client.caller(op), args.concurrency, duration)
                used = cpu_seconds(servers[proto]) - before
                if proto == "rest":
                    await client.close()
                else:
                    await client.channel.close()
                if r:
                    rounds[proto].append(summary(latencies, duration, used))
                    print(f"  {op} {proto} round {r}: {rounds[proto][-1]}", flush=True)
        med: dict[str, Any] = {
            p: {k: round(statistics.median(x[k] for x in runs), 2) for k in runs[0]} for p, runs in rounds.items()
        }
        for proto in PROTOCOLS[1:]:
            med[f"{proto}/rest"] = {
                "rps": round(med[proto]["rps"] / med["rest"]["rps"], 2),
                "server_cpu_us": round(med[proto]["server_cpu_us"] / med["rest"]["server_cpu_us"], 2),
                "p99_ms": round(med[proto]["p99_ms"] / med["rest"]["p99_ms"], 2),
            }
        results[op] = med
    return results


def markdown(r: dict[str, Any], command: str) -> str:
    lines = [
        f"# gRPC next to REST ({r['machine']['cpu']}, {r['machine']['cores']} cores)",
        "",
        f"`{command}`: REST on one Granian worker; gRPC from one serve-grpc process, and from inside a Granian "
        f"worker (bench/grpc_in_worker.py); PostgreSQL, {r['concurrency']} concurrent callers from one asyncio "
        f"client process, {r['duration']} s per run, median of {r['rounds']} rounds.",
        "",
        "| operation | protocol | req/s | p50 ms | p99 ms | server CPU µs/request |",
        "|---|---|---|---|---|---|",
    ]
    for op in ("quote", "create"):
        for proto in PROTOCOLS:
            m = r["results"][op][proto]
            lines.append(f"| {op} | {proto} | {m['rps']} | {m['p50_ms']} | {m['p99_ms']} | {m['server_cpu_us']} |")
        for proto in PROTOCOLS[1:]:
            ratio = r["results"][op][f"{proto}/rest"]
            lines.append(
                f"| {op} | {proto}/rest | {ratio['rps']}x | | {ratio['p99_ms']}x | {ratio['server_cpu_us']}x |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with harness.prepared_database("orderfast_bench_grpc") as (dsn, _):
        data = Path(tempfile.mkdtemp(prefix="bench-grpc-"))
        env = {
            "ORDERFAST_DATABASE_URL": dsn,
            "ORDERFAST_DATA_DIR": str(data),
            "ORDERFAST_JWT_SECRET": harness.SECRET,
            "ORDERFAST_RATELIMIT_USER": "1000000000/1",
            "ORDERFAST_RATELIMIT_IP": "1000000000/1",
            "ORDERFAST_LOG_LEVEL": "warning",
        }
        ports = {p: harness.free_port() for p in PROTOCOLS}
        http_cmd = [str(harness.BIN / "orderfast"), "serve", "--port", str(ports["rest"]), "--workers", "1"]
        grpc_cmd = [str(harness.BIN / "orderfast"), "serve-grpc", "--port", str(ports["grpc"])]
        in_worker_http = harness.free_port()
        in_worker_cmd = [
            *(str(harness.BIN / "granian"), "--interface", "asgi", "--factory", "--loop", "uvloop"),
            *("--workers", "1", "--port", str(in_worker_http), "bench.grpc_in_worker:app"),
        ]
        in_worker_env = {**env, "BENCH_GRPC_PORT": str(ports["grpc-in-worker"]), "PYTHONPATH": str(ROOT)}
        with (
            harness.serving("orderfast", http_cmd, env, ports["rest"], "/readyz") as http,
            GrpcServing(grpc_cmd, env, ports["grpc"]) as grpc_proc,
            harness.serving("grpc-in-worker", in_worker_cmd, in_worker_env, in_worker_http, "/readyz") as in_worker,
        ):
            servers = {
                "rest": psutil.Process(http.proc.pid),
                "grpc": psutil.Process(grpc_proc.pid),
                "grpc-in-worker": psutil.Process(in_worker.proc.pid),
            }
            results = asyncio.run(measure(args, ports, servers))
    report = {
        "machine": harness.machine(),
        "duration": args.duration,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "grpc_vs_rest.json").write_text(json.dumps(report, indent=2))
    command = "python bench/grpc_vs_rest.py " + " ".join(sys.argv[1:])
    (RESULTS / "grpc_vs_rest.md").write_text(markdown(report, command.strip()))
    print(markdown(report, command.strip()))


class GrpcServing:
    """serve-grpc until the block ends, once its health check says SERVING."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int) -> None:
        self.cmd, self.env, self.port = cmd, env, port

    def __enter__(self) -> Any:
        self.proc = subprocess.Popen(
            self.cmd,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    if (
                        stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                        == health_pb2.HealthCheckResponse.SERVING
                    ):
                        return self.proc
                except grpc.RpcError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serve-grpc did not start")
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


if __name__ == "__main__":
    main()
