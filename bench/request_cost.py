"""What one request costs a Granian worker's threads, before any work: the floor under every
endpoint and under a shed request.

One worker, an open-loop load of ``--rate`` requests/s for ``--duration`` seconds per case, and
the CPU time of the worker's threads read from ``/proc`` before and after: its main thread (where
the event loop, the ASGI app and everything in Python run — one per worker, the scarce one) apart
from Granian's Rust runtime threads. Cases:

* ``bare``: a bare ASGI app answering a fixed body (``bench/peers/bare_asgi.py``): Granian's ASGI
  hand-over alone;
* ``livez``: orderfast's liveness probe, through its outer layers (request id, security headers,
  metrics), no admission;
* ``unauthenticated``: a create-order without credentials, refused 401 by the API guard;
* ``quote``: an authenticated quote of a one-line order, answered 200 (the whole hot path that
  touches no database: authentication, rate limits, the body, pricing in the core);
* ``refused-body``: the same quote with a field the contract does not know, refused 422 before
  pricing;
* ``unknown-sku``: a quote of a SKU the catalog does not have, refused 422 by pricing (which first
  catches the worker's snapshot up: refusals at once share one refresh);
* ``shed``: a create-order refused 503 by admission control (the limit held at 1 by a request whose
  body never finishes arriving, ``ORDERFAST_ADMISSION_MAX=1``).

orderfast runs on its embedded SQLite store with the demo catalog: none of these cases reaches a
database.

    python bench/request_cost.py            # ~1 minute
    python bench/request_cost.py rev=HEAD~5 default   # another revision's Python (this core) first
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, openloop, side_by_side  # noqa: E402

from orderfast.http.auth import mint_token  # noqa: E402


def thread_seconds(pid: int) -> dict[str, tuple[str, float]]:
    """CPU seconds per thread of ``pid``: {tid: (name, seconds)}."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def measure(target: harness.Target, request: bytes, rate: float, duration: float) -> dict[str, object]:
    worker = target.tree()[-1].pid
    before = thread_seconds(worker)
    result = openloop.run_blocking(target.url, rate, duration, lambda i: request, connections=256)
    after = thread_seconds(worker)
    main = runtime = 0.0
    for tid, (name, seconds) in after.items():
        spent = seconds - before.get(tid, (name, 0.0))[1]
        if tid == str(worker):
            main += spent
        else:
            runtime += spent
    return {
        "statuses": dict(result.statuses),
        "main_thread_us": round(main / result.sent * 1e6, 1),
        "runtime_threads_us": round(runtime / result.sent * 1e6, 1),
        "p99_ms": result.percentile_ms(99),
    }


@contextmanager
def slot_held(url: str) -> Iterator[None]:
    """An authenticated create-order whose body never finishes arriving: past authentication it
    waits for its body, holding its place under the limit."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    token = mint_token(harness.SECRET, "slot-holder", ttl=3600)
    sock.sendall(
        b"POST /v1/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nidempotency-key: held\r\n"
        b"authorization: Bearer " + token.encode() + b"\r\ncontent-length: 1000\r\n\r\n{"
    )
    try:
        yield
    finally:
        sock.close()


@contextmanager
def orderfast(env: dict[str, str]) -> Iterator[harness.Target]:
    port = harness.free_port()
    cmd = [str(harness.BIN / "orderfast"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with harness.serving("orderfast", cmd, env, port, "/readyz") as target:
        yield target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=4000)
    ap.add_argument("--duration", type=float, default=8)
    ap.add_argument("configs", nargs="*", default=["default"], help="default, or rev=REV (its Python, this core)")
    args = ap.parse_args()
    with ExitStack() as stack:
        for config in args.configs:
            extra = side_by_side.worktree(stack, config.removeprefix("rev=")) if config.startswith("rev=") else {}
            print(f"{config}:")
            run(args, extra)


def run(args: argparse.Namespace, extra: dict[str, str]) -> None:
    harness.WORKERS = 1
    rows = {}
    with harness.bare_granian() as bare:
        host = bare.url.removeprefix("http://")
        rows["bare"] = measure(bare, openloop.request_bytes("GET", "/", host, {}), args.rate, args.duration)
    order = b'{"currency":"USD","items":[{"sku":"SKU-1","quantity":1}]}'
    post = {"content-type": "application/json", "idempotency-key": "k"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "ORDERFAST_DATA_DIR": tmp,
            "ORDERFAST_JWT_SECRET": harness.SECRET,
            "ORDERFAST_LOG_LEVEL": "warning",
            "ORDERFAST_BODY_TIMEOUT": "600",
            "ORDERFAST_RATELIMIT_USER": "1000000000/1",
            "ORDERFAST_RATELIMIT_IP": "1000000000/1",
            **extra,
        }
        migrate = [str(harness.BIN / "orderfast"), "migrate", "--seed-demo"]
        subprocess.run(migrate, env={**os.environ, **env}, check=True, capture_output=True)
        with orderfast(env) as target:
            host = target.url.removeprefix("http://")
            rows["livez"] = measure(target, openloop.request_bytes("GET", "/livez", host, {}), args.rate, args.duration)
            rows["unauthenticated"] = measure(
                target, openloop.request_bytes("POST", "/v1/orders", host, post, order), args.rate, args.duration
            )
            signed = {"authorization": f"Bearer {mint_token(harness.SECRET, 'quoter', ttl=3600)}"}
            quote = openloop.request_bytes("POST", "/v1/quotes", host, {**signed, **post}, order)
            rows["quote"] = measure(target, quote, args.rate, args.duration)
            bogus = order[:-1] + b',"bogus":1}'
            refused = openloop.request_bytes("POST", "/v1/quotes", host, {**signed, **post}, bogus)
            rows["refused-body"] = measure(target, refused, args.rate, args.duration)
            unknown = order.replace(b"SKU-1", b"NO-SUCH-SKU")
            refused = openloop.request_bytes("POST", "/v1/quotes", host, {**signed, **post}, unknown)
            rows["unknown-sku"] = measure(target, refused, args.rate, args.duration)
        # The limit held at one by a request that never finishes: every other create-order is shed.
        with orderfast({**env, "ORDERFAST_ADMISSION_MAX": "1", "ORDERFAST_ADMISSION_MIN": "1"}) as target:
            host = target.url.removeprefix("http://")
            with slot_held(target.url):
                rows["shed"] = measure(
                    target, openloop.request_bytes("POST", "/v1/orders", host, post, order), args.rate, args.duration
                )
    print(f"CPU per request of one Granian worker at {args.rate:.0f} requests/s (µs):")
    for case, row in rows.items():
        print(f"  {case:16s} main thread {row['main_thread_us']:6.1f}  runtime threads {row['runtime_threads_us']:6.1f}"
              f"  statuses {row['statuses']}  P99 {row['p99_ms']:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
