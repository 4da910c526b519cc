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
from orderfast.store.consistency import COOKIE, READ_AFTER, parse_position

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


_READS = frozenset({"GET", "HEAD"})
_COOKIE_PREFIX = COOKIE.encode() + b"="


def carried_position(headers: list[tuple[bytes, bytes]]) -> int:
    """The write position a read carries (``Orderfast-Read-After``, else the cookie); 0: none."""
    found = 0
    for name, value in headers:
        if name == b"orderfast-read-after":
            return parse_position(value.decode("latin-1")) or 0
        if name == b"cookie" and _COOKIE_PREFIX in value:
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(_COOKIE_PREFIX):
                    found = parse_position(part[len(_COOKIE_PREFIX) :].decode("latin-1")) or 0
    return found


def position_fields(position: str) -> list[tuple[bytes, bytes]]:
    """What a write's answer tells its client: the position to read after, as a header and a cookie
    (which HTTP clients with a cookie jar, and browsers, send back on their own)."""
    value = position.encode()
    cookie = _COOKIE_PREFIX + value + b"; Path=/v1; Max-Age=60; HttpOnly; SameSite=Lax"
    return [(b"orderfast-read-after", value), (b"set-cookie", cookie)]


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
    - with read replicas (``positions``): a read (GET, HEAD) may go to a replica that has replayed the
      position it carries; the answer to a request during which this process wrote carries the
      position to read after (store/consistency.py);
    - with tracing on, the request's SERVER span (``METHOD /route/{template}``), continuing the
      client's trace when it sent a ``traceparent``: every span of the request is its child."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        measured: bool,
        logged: bool,
        draining: Callable[[], bool] = lambda: False,
        positions: Callable[[], str | None] | None = None,
    ) -> None:
        self.app = app
        self._measured = measured
        self._logged = logged
        self._draining = draining
        self._positions = positions

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
        positions = self._positions
        routed = None
        before: str | None = None
        if positions is not None:
            if scope["method"] in _READS:
                routed = READ_AFTER.set(carried_position(scope["headers"]))
            else:
                before = positions()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                fields = scope.get(security.RESPONSE_FIELDS)
                if positions is not None and routed is None and 200 <= status < 300:
                    # Only after a write: the position moved while this request was handled.
                    written = positions()
                    if written is not None and written != before:
                        fields = [*(fields or ()), *position_fields(written)]
                message["headers"] = security.complete(
                    message.get("headers", ()), scope["path"], fields, header, self._draining()
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
            if routed is not None:
                READ_AFTER.reset(routed)

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
