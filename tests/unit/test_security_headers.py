"""Security headers on every response — including the 500 that Starlette's outermost error
middleware writes when an endpoint fails unexpectedly."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderfast.app import OrderfastApp
from orderfast.http.errors import EXCEPTION_HANDLERS
from tests.unit.asgi import http_scope

pytestmark = pytest.mark.anyio


async def boom(request: Request) -> Response:
    raise RuntimeError("an unexpected failure")


async def fine(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def call(app: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(path)
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


@pytest.mark.parametrize("path", ["/boom", "/fine", "/missing"])
async def test_every_response_has_the_security_headers(path: str) -> None:
    app = OrderfastApp(routes=[Route("/boom", boom), Route("/fine", fine)], exception_handlers=dict(EXCEPTION_HANDLERS))
    status, headers, body = await call(app, path)
    assert status == {"/boom": 500, "/fine": 200, "/missing": 404}[path]
    for name in (b"x-content-type-options", b"content-security-policy", b"x-frame-options", b"referrer-policy"):
        assert name in headers, (path, headers)
    assert headers[b"cache-control"] == b"no-store"
    if status == 500:
        assert headers[b"content-type"] == b"application/problem+json"
        assert b"an unexpected failure" not in body
