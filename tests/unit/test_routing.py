"""The static-route table picks exactly the route Starlette's scan would, or leaves it to the scan."""

from __future__ import annotations

import tempfile
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route, Router

from orderfast.app import create_app
from orderfast.config import Settings
from orderfast.http.routing import StaticRoutes, static_table
from tests.unit.asgi import http_scope

pytestmark = pytest.mark.anyio


def scanned(routes: list[Any], path: str, method: str) -> Route | None:
    """The route Starlette's router hands the request to (its first full match)."""
    scope = http_scope(path, method)
    return next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)


def test_every_static_route_of_the_app_is_the_one_the_scan_finds() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings.from_env({"ORDERFAST_DATA_DIR": tmp, "ORDERFAST_JWT_SECRET": "k" * 40}))
    routes = app.router.routes
    table = static_table(routes)
    assert ("/v1/quotes", "POST") in table and ("/v1/orders", "POST") in table and ("/readyz", "GET") in table
    for (path, method), route in table.items():
        assert scanned(routes, path, method) is route, (path, method)


async def ok(request: Request) -> Response:
    return PlainTextResponse(request.scope["route"].path)


def test_a_static_route_behind_a_route_that_also_matches_it_is_left_to_the_scan() -> None:
    routes = [Route("/items/{name}", ok), Route("/items/new", ok), Route("/other", ok, methods=["POST"])]
    table = static_table(routes)
    assert ("/items/new", "GET") not in table  # the scan gives it to /items/{name}
    assert table[("/other", "POST")] is routes[2]
    assert ("/other", "GET") not in table  # a 405: the scan answers it


async def test_the_fast_path_fills_the_scope_as_the_scan_does() -> None:
    router = Router(routes=[Route("/items/{name}", ok), Route("/plain", ok)])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    fast, scan = http_scope("/plain"), http_scope("/plain")
    await StaticRoutes(router)(fast, receive, send)
    await router.app(scan, receive, send)
    assert {k: fast[k] for k in ("router", "route", "endpoint", "path_params")} == {
        k: scan[k] for k in ("router", "route", "endpoint", "path_params")
    }
    assert [m.get("body") for m in sent if m["type"] == "http.response.body"] == [b"/plain", b"/plain"]
