"""What every HTTP request leaves behind — its id, its RED metrics (by route *template*, never the raw
path), an access-log line — and ``/metrics``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderfast import _core
from orderfast.http import security
from orderfast.observability import instruments as m
from orderfast.observability import tracing
from orderfast.observability.logging import REQUEST_ID
from orderfast.observability.metrics import CONTENT_TYPE, scrape
from orderfast.resilience import deadline

UNMATCHED = "unmatched"  # a path no route serves: its raw path is never a label
_STATUS_CLASS = {n: f"{n}xx" for n in range(1, 6)}
MAX_REQUEST_ID = 200
access_log = logging.getLogger("orderfast.access")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` when it is one (1 to 200 visible ASCII characters), else a
    new one (a UUIDv7: time-ordered)."""
    for name, value in headers:
        if name == b"x-request-id":
            if 0 < len(value) <= MAX_REQUEST_ID and all(0x21 <= b <= 0x7E for b in value):
                return value.decode()
            break
    return _core.new_order_id()


class RequestObserver:
    """Every HTTP request's id, metrics, headers and access-log line, in one layer (outermost but for
    admission control, so refusals of unreadable heads are seen too; a request admission control
    sheds is recorded through ``record``):

    - ``X-Request-Id``: the client's, or a new one; on every response, in every problem body and
      in every log line written while the request is handled;
    - the security headers, the fields inner layers ask for (``security.RESPONSE_FIELDS``) and,
      while the server drains, ``Connection: close`` — one send wrapper for them all;
    - RED metrics: requests by method, route template and status class, latency by method and
      route, requests in flight;
    - with the access log on, one JSON line per request;
    - the request budget's clock (resilience/deadline.py);
    - with tracing on, the request's SERVER span (``METHOD /route/{template}``), continuing the
      client's trace when it sent a ``traceparent``: every span of the request is its child."""

    def __init__(
        self, app: ASGIApp, *, measured: bool, logged: bool, draining: Callable[[], bool] = lambda: False
    ) -> None:
        self.app = app
        self._measured = measured
        self._logged = logged
        self._draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope["headers"])
        token = REQUEST_ID.set(rid)
        budget = deadline.start()  # the request budget counts from here
        header = (b"x-request-id", rid.encode())
        started = time.perf_counter()
        status = 500
        if self._measured:
            m.HTTP_IN_FLIGHT.inc()
        traced = tracing.server(scope, rid) if tracing.ENABLED else None

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = security.complete(
                    message.get("headers", ()),
                    scope["path"],
                    scope.get(security.RESPONSE_FIELDS),
                    header,
                    self._draining(),
                )
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = route.path if route is not None else UNMATCHED
            if self._measured:
                m.HTTP_IN_FLIGHT.dec()
            self.record(scope, template, status, elapsed)
            if traced is not None:
                traced.finish(None if route is None else template, status)
            REQUEST_ID.reset(token)
            deadline.reset(budget)

    def record(self, scope: Scope, template: str, status: int, elapsed: float) -> None:
        """The RED metrics and the access-log line of an answered request (also of one answered
        before it reached this layer: admission control's 503s)."""
        method = scope["method"]
        if self._measured:
            m.HTTP_REQUESTS.labels(method, template, _STATUS_CLASS.get(status // 100, "other")).inc()
            m.HTTP_DURATION.labels(method, template).observe(elapsed)
        if self._logged:
            access_log.info(
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={
                    "fields": {
                        "method": method,
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "client": (scope.get("client") or ("", 0))[0],
                    }
                },
            )


class MetricsEndpoint:
    def __init__(self, directory: Path | None) -> None:
        self._directory = directory

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.metrics, methods=["GET"])]

    async def metrics(self, request: Request) -> Response:
        return Response(scrape(self._directory), media_type=CONTENT_TYPE)
