"""RED metrics for every HTTP request (by route *template*, never the raw path), and ``/metrics``."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderfast.observability import instruments as m
from orderfast.observability.metrics import CONTENT_TYPE, scrape

UNMATCHED = "unmatched"  # a path no route serves: its raw path is never a label
_STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}


class RequestMetrics:
    """Counts and times every HTTP request: requests by method, route and status class, latency by
    method and route, requests in flight. Outermost but for the security headers, so refusals of
    unreadable heads count too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        m.HTTP_IN_FLIGHT.inc()

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            m.HTTP_IN_FLIGHT.dec()
            route = scope.get("route")
            template = route.path if route is not None else UNMATCHED
            method = scope["method"]
            m.HTTP_REQUESTS.labels(method, template, _STATUS_CLASS.get(status // 100, "other")).inc()
            m.HTTP_DURATION.labels(method, template).observe(time.perf_counter() - started)


class MetricsEndpoint:
    def __init__(self, directory: Path | None) -> None:
        self._directory = directory

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.metrics, methods=["GET"])]

    async def metrics(self, request: Request) -> Response:
        return Response(scrape(self._directory), media_type=CONTENT_TYPE)
