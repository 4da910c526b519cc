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
from orderfast.http.health import Health
from orderfast.http.security import RESPONSE_FIELDS
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


async def cached(request: Request) -> Response:
    return JSONResponse({"ok": True}, headers={"cache-control": "private, max-age=60"})


async def limited(request: Request) -> Response:
    request.scope[RESPONSE_FIELDS] = [(b"ratelimit", b'"user";r=9;t=60')]  # as the guard hands them over
    return JSONResponse({"ok": True})


async def test_the_one_wrapper_keeps_what_a_response_sets_and_adds_the_rest_once() -> None:
    app = OrderfastApp(routes=[Route("/cached", cached), Route("/limited", limited)])
    _, headers, _ = await call(app, "/cached")
    assert headers[b"cache-control"] == b"private, max-age=60", "a response's own choice is kept"
    _, headers, _ = await call(app, "/limited")
    assert headers[b"ratelimit"] == b'"user";r=9;t=60', "fields an inner layer asked for"
    assert b"x-request-id" in headers and b"connection" not in headers
    sent = await raw(app, "/limited")
    names = [name for name, _ in sent]
    assert len(names) == len(set(names)), f"each header once: {names}"


async def raw(app: Any, path: str) -> list[tuple[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(http_scope(path), receive, send)
    return list(next(m for m in sent if m["type"] == "http.response.start")["headers"])


async def test_a_draining_worker_closes_its_connections() -> None:
    app = OrderfastApp(routes=[Route("/fine", fine)])
    health = Health(store=None)  # type: ignore[arg-type]
    health.drain()
    app.health = health
    _, headers, _ = await call(app, "/fine")
    assert headers[b"connection"] == b"close"
