"""Core micro-benchmarks: each Rust hot path side by side with the plain Python a team would write.

Disabled in `make test` (``--benchmark-disable`` runs each once, as a smoke test); `make bench`
runs them for real. Compare within one run, as ratios: absolute numbers move with the machine.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

import orjson
import pytest

from orderfast import _core

ITEMS = [{"sku": f"SKU-{i}", "quantity": (i % 5) + 1} for i in range(5)]
BODY = orjson.dumps({"currency": "USD", "items": ITEMS, "expected_total": None})
PRICES = {f"SKU-{i}": (f"Product {i}", Decimal("19.99") + i) for i in range(1000)}


def python_parse_and_price(body: bytes) -> tuple[list[tuple[str, str, int, Decimal, Decimal]], Decimal]:
    """What a typical hand-written Python path does: json, dict checks, Decimal arithmetic."""
    doc: Any = json.loads(body)
    if not isinstance(doc, dict) or set(doc) - {"currency", "items", "expected_total"}:
        raise ValueError("bad body")
    if doc.get("currency") != "USD" or not isinstance(doc.get("items"), list):
        raise ValueError("bad body")
    lines = []
    total = Decimal(0)
    for item in doc["items"]:
        sku, qty = item["sku"], item["quantity"]
        if not isinstance(qty, int) or not 1 <= qty <= 10_000:
            raise ValueError("bad quantity")
        name, price = PRICES[sku]
        line_total = (price * qty).quantize(Decimal("0.01"))
        lines.append((sku, name, qty, price, line_total))
        total += line_total
    return lines, total


@pytest.fixture(scope="module")
def catalog() -> _core.Catalog:
    c = _core.Catalog()
    c.upsert([(sku, name, "USD", int(price * 100), None, None) for sku, (name, price) in PRICES.items()])
    return c


@pytest.mark.benchmark(group="parse+price")
def test_rust_parse_and_price(benchmark: Any, catalog: _core.Catalog) -> None:
    priced = benchmark(lambda: catalog.price(_core.parse_order(BODY)))
    _, expected = python_parse_and_price(BODY)
    assert Decimal(priced.format(priced.total)) == expected


@pytest.mark.benchmark(group="parse+price")
def test_python_parse_and_price(benchmark: Any) -> None:
    lines, _ = benchmark(python_parse_and_price, BODY)
    assert len(lines) == 5


@pytest.mark.benchmark(group="limiter")
def test_rust_rate_limiter(benchmark: Any) -> None:
    limiter = _core.RateLimiter(10**9, 1.0, 10**9)
    assert benchmark(limiter.acquire, "user-1").allowed


class PythonTokenBucket:
    """The usual Python limiter: a dict of (tokens, last) under a lock."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1
            self.buckets[key] = (tokens - 1 if ok else tokens, now)
            return ok


@pytest.mark.benchmark(group="limiter")
def test_python_rate_limiter(benchmark: Any) -> None:
    assert benchmark(PythonTokenBucket(1e9, 1e9).acquire, "user-1")


@pytest.mark.benchmark(group="idempotency")
def test_rust_idempotency_begin_abandon(benchmark: Any) -> None:
    imap = _core.IdempotencyMap()

    def cycle() -> None:
        imap.begin("user-1\x00key", _core.fingerprint(BODY))
        imap.abandon("user-1\x00key")

    benchmark(cycle)
    assert len(imap) == 0


@pytest.mark.benchmark(group="idempotency")
def test_rust_idempotency_begin_complete_round(benchmark: Any) -> None:
    """One request's worth: claim a fresh key, then record its response."""
    imap = _core.IdempotencyMap()
    fp = _core.fingerprint(BODY)
    counter = iter(range(10**9))
    headers = [("location", "/v1/orders/0190b6a4-7c2e-7a33-8d4e-0123456789ab")]

    def round_trip() -> None:
        key = f"user-1\x00{next(counter)}"
        imap.begin(key, fp)
        imap.complete(key, fp, 201, headers, BODY)

    benchmark(round_trip)
    assert len(imap) > 0


@pytest.mark.benchmark(group="limiter")
def test_rust_rate_limit_policies_user_and_ip(benchmark: Any) -> None:
    limits = _core.RateLimitPolicies([("user", 10**9, 1.0, 10**9), ("ip", 10**9, 1.0, 10**9)])
    decisions = benchmark(limits.acquire, ["user-1", "127.0.0.1"])
    assert all(d is not None and d.allowed for d in decisions)
