"""What observing a request costs, per request, on the hot path: the request-id/metrics/access-log
layer around a trivial app, with metrics on and off, against the bare app — and the business
counters of a create-order. Run with ``make bench``; compare as differences in microseconds against
a create-order's whole cost (about 1 / its throughput per worker)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from orderfast.http.metrics import RequestObserver
from orderfast.observability import instruments as m

ROUTE = Route("/v1/orders", lambda request: None, methods=["POST"])
HEADERS = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"idempotency-key", b"k-1")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = ROUTE  # as Starlette's router sets it
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> Message:
    return {"type": "http.request", "body": b""}


async def send(message: Message) -> None:
    return None


def requests(asgi: Any, n: int = 1000) -> None:
    async def run() -> None:
        for _ in range(n):
            scope = {"type": "http", "method": "POST", "path": "/v1/orders", "headers": HEADERS}
            await asgi(scope, receive, send)

    asyncio.run(run())


def test_bare_app_1000_requests(benchmark: Any) -> None:
    benchmark(requests, app)


def test_observer_without_metrics_1000_requests(benchmark: Any) -> None:
    benchmark(requests, RequestObserver(app, measured=False, logged=False))


def test_observer_with_metrics_1000_requests(benchmark: Any) -> None:
    observed = RequestObserver(app, measured=True, logged=False)
    before = m.HTTP_REQUESTS.labels("POST", "/v1/orders", "2xx").value
    benchmark(requests, observed)
    assert m.HTTP_REQUESTS.labels("POST", "/v1/orders", "2xx").value > before


def test_create_order_business_counters_1000(benchmark: Any) -> None:
    def count() -> None:
        for _ in range(1000):
            m.ORDERS_CREATED.labels("USD").inc()
            m.ORDER_VALUE.labels("USD").inc(19900)
            m.BATCH_SIZE.observe(8)
            m.BATCH_WAIT.observe(0.0021)

    benchmark(count)
