"""Open-loop, fixed-rate HTTP/1.1 load, with latency measured from each request's intended send time.

A closed-loop generator (wrk, and most others) sends the next request only when a connection is
free, so when the server stalls it stops sending and the stall is counted once instead of for every
request that should have gone out meanwhile (coordinated omission). Here request ``i`` is *due* at
``start + i / rate`` whatever happens; its latency is ``answer time - due time``, so time spent
queued behind a slow server — for a free connection, or behind the generator itself — is counted.
Latencies go into an HdrHistogram (1 µs .. 60 s, 3 significant digits). The generator's own
pauses would count too: its cyclic garbage collector is off while a schedule runs (its full
collections took 25-60 ms here, every few seconds at thousands of requests a second).

Requests come from a callable ``make(i) -> bytes`` (a whole HTTP/1.1 request), so each can carry a
unique Idempotency-Key — what oha and wrk2 cannot do. ``bench/harness.py`` checks this generator
against oha on a scenario both can run (a quote: the same request every time).

    python bench/openloop.py --url http://127.0.0.1:8000/livez --rate 1000 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

try:
    import uvloop
except ImportError:  # pragma: no cover - the dev install has it
    uvloop = None


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)


@dataclass
class Result:
    rate: float
    duration: float
    sent: int = 0
    ok: int = 0
    non2xx: int = 0
    errors: int = 0
    error_kinds: collections.Counter[str] = field(
        default_factory=collections.Counter
    )  # e.g. "connect ConnectionRefusedError"
    elapsed: float = 0.0
    histogram: HdrHistogram = field(default_factory=_histogram)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    # The 2xx answers alone (under overload the 503s are fast and would flatter the percentiles),
    # overall and per second of the run (by due time: second 0 is the first second's requests).
    ok_histogram: HdrHistogram = field(default_factory=_histogram)
    ok_seconds: dict[int, HdrHistogram] = field(default_factory=lambda: collections.defaultdict(_histogram))

    @property
    def achieved(self) -> float:
        return (self.ok + self.non2xx) / self.elapsed if self.elapsed else 0.0

    @property
    def goodput(self) -> float:
        """2xx answers per second of the schedule."""
        return self.ok / self.duration if self.duration else 0.0

    def percentile_ms(self, p: float) -> float:
        return float(self.histogram.get_value_at_percentile(p)) / 1000

    def ok_percentile_ms(self, p: float) -> float:
        return float(self.ok_histogram.get_value_at_percentile(p)) / 1000

    def timeline(self, p: float = 99) -> list[tuple[int, int, float]]:
        """(second, 2xx answers, their P``p`` in ms) for each second of the schedule."""
        return [
            (s, h.get_total_count(), float(h.get_value_at_percentile(p)) / 1000)
            for s, h in sorted(self.ok_seconds.items())
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "target_rps": self.rate,
            "achieved_rps": round(self.achieved, 1),
            "sent": self.sent,
            "ok": self.ok,
            "non2xx": self.non2xx,
            "errors": self.errors,
            "error_kinds": dict(self.error_kinds),
            "p50_ms": self.percentile_ms(50),
            "p90_ms": self.percentile_ms(90),
            "p99_ms": self.percentile_ms(99),
            "p999_ms": self.percentile_ms(99.9),
            "max_ms": float(self.histogram.get_max_value()) / 1000,
            "goodput_rps": round(self.goodput, 1),
            "ok_p50_ms": self.ok_percentile_ms(50),
            "ok_p99_ms": self.ok_percentile_ms(99),
            "statuses": dict(self.statuses),
        }


class _Conn(asyncio.Protocol):
    """One keep-alive connection; answers are framed by Content-Length (all servers here send it)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, float]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        length = _content_length(head)
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buf[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            # Timed here, as the bytes arrive: uvloop's loop.time() only has millisecond resolution.
            self.waiter.set_result((status, time.perf_counter()))

    async def request(self, raw: bytes) -> tuple[int, float]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def _content_length(head: bytes) -> int:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : end if end > 0 else len(head)])


async def run(url: str, rate: float, duration: float, make: Callable[[int], bytes], *, connections: int = 64) -> Result:
    """Sends ``rate * duration`` requests on schedule over up to ``connections`` keep-alive
    connections (opened lazily, kept), then waits for the last answer."""
    (result,) = await run_phases(url, [(rate, duration)], make, connections=connections)
    return result


@contextlib.contextmanager
def quiet_collector() -> Iterator[None]:
    """No cyclic garbage collection while the block runs: what exists before is frozen out of the
    collector's sight, and nothing is collected meanwhile (requests and answers are freed by
    reference counting; the few cycles wait for the end). A full collection stops the generator
    for tens of milliseconds, and every request due meanwhile would be charged for it."""
    enabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


async def run_phases(
    url: str, phases: Sequence[tuple[float, float]], make: Callable[[int], bytes], *, connections: int = 64
) -> list[Result]:
    """One schedule of consecutive phases, each ``(rate, seconds)``, with no gap between them (an
    overload, then normal load, to see how soon latency recovers); one Result per phase. Requests
    are numbered across phases, so ``make(i)`` can give each a unique key."""
    with quiet_collector():
        return await _run_phases(url, phases, make, connections)


async def _run_phases(
    url: str, phases: Sequence[tuple[float, float]], make: Callable[[int], bytes], connections: int
) -> list[Result]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    results = [Result(rate, duration) for rate, duration in phases]
    idle: collections.deque[_Conn] = collections.deque()
    opened = 0
    waiting: collections.deque[asyncio.Future[_Conn]] = collections.deque()

    async def acquire() -> _Conn:
        nonlocal opened
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        if opened < connections:
            opened += 1
            try:
                _, conn = await loop.create_connection(_Conn, host, port)
            except OSError:
                opened -= 1
                raise
            return conn
        fut: asyncio.Future[_Conn] = loop.create_future()
        waiting.append(fut)
        return await fut

    def release(conn: _Conn) -> None:
        nonlocal opened
        if conn.closed:
            opened -= 1
            return
        while waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        idle.append(conn)

    async def one(result: Result, i: int, due: float, second: int) -> None:
        conn = None
        try:
            conn = await acquire()
            status, done = await conn.request(make(i))
        except (OSError, ConnectionError) as e:
            result.errors += 1
            result.error_kinds[f"{'request' if conn is not None else 'connect'} {type(e).__name__}"] += 1
            if conn is not None:
                conn.closed = True
                release(conn)
            return
        latency_us = min(max(1, int((done - due) * 1_000_000)), 60_000_000)
        result.histogram.record_value(latency_us)
        result.statuses[status] += 1
        if 200 <= status < 300:
            result.ok += 1
            result.ok_histogram.record_value(latency_us)
            result.ok_seconds[second].record_value(latency_us)
        else:
            result.non2xx += 1
        release(conn)

    tasks = []
    clock = time.perf_counter
    start = clock() + 0.05
    i = 0
    for result in results:
        total, rate = int(result.rate * result.duration), result.rate
        for n in range(total):
            due = start + n / rate
            delay = due - clock()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(result, i, due, int(n / rate))))
            result.sent += 1
            i += 1
        start += result.duration
    await asyncio.gather(*tasks)
    # Every phase but the last lasts its schedule; the last also waits for the last answers.
    results[-1].elapsed = clock() - (start - results[-1].duration)
    for result in results[:-1]:
        result.elapsed = result.duration
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0)  # let the transports finish closing before the loop does
    return results


def request_bytes(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    if body or method in ("POST", "PUT"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run_blocking(url: str, rate: float, duration: float, make: Callable[[int], bytes], **kw: Any) -> Result:
    (result,) = run_phases_blocking(url, [(rate, duration)], make, **kw)
    return result


def run_phases_blocking(
    url: str, phases: Sequence[tuple[float, float]], make: Callable[[int], bytes], **kw: Any
) -> list[Result]:
    if uvloop is not None:
        return uvloop.run(run_phases(url, phases, make, **kw))
    return asyncio.run(run_phases(url, phases, make, **kw))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("-H", "--header", action="append", default=[])
    args = ap.parse_args()
    parts = urlsplit(args.url)
    headers = dict(h.split(": ", 1) for h in args.header)
    raw = request_bytes("GET", parts.path or "/", parts.netloc, headers)
    began = time.monotonic()
    result = run_blocking(args.url, args.rate, args.duration, lambda i: raw, connections=args.connections)
    print({**result.summary(), "wall_s": round(time.monotonic() - began, 2)})


if __name__ == "__main__":
    main()
