"""What silent sockets cost a normal client: fresh-connection request latency and worker memory
with 0 and with N sockets held open that never send a byte, side by side in one run.

Starts ``orderfast serve`` (one worker, SQLite) on loopback. For each count, opens the silent
sockets, then times ``--requests`` sequential GET /livez requests, each on a new connection (the
case a lock-out hurts), then releases the sockets and waits for the server to notice.

    python bench/idle_sockets.py --idle 0 --idle 1000 --idle 3000 --requests 300
"""

from __future__ import annotations

import argparse
import platform
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import Server  # noqa: E402  (reuses the real-server fixture code)


def one_request(port: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        if not s.recv(4096).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("not a 200")
    return (time.perf_counter() - started) * 1000


def worker_rss_mib(server: Server) -> float:
    assert server.proc is not None
    children = psutil.Process(server.proc.pid).children(recursive=True)
    return max(c.memory_info().rss for c in children) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, action="append", help="silent sockets (repeatable)")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    counts = args.idle or [0, 1000, 3000]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), {"ORDERFAST_HEADER_TIMEOUT": "10"}, workers=1)
        server.start()
        try:
            print(f"# {platform.node()} · {psutil.cpu_count()} CPUs · Python {platform.python_version()}")
            print("| silent sockets | P50 ms | P99 ms | max ms | worker RSS MiB |")
            print("|---:|---:|---:|---:|---:|")
            for count in counts:
                silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(count)]
                time.sleep(0.5)  # let the worker accept them all
                latencies = sorted(one_request(server.port) for _ in range(args.requests))
                rss = worker_rss_mib(server)
                for s in silent:
                    s.close()
                p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
                print(f"| {count} | {statistics.median(latencies):.2f} | {p99:.2f} | {latencies[-1]:.2f} | {rss:.0f} |")
                time.sleep(1)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
