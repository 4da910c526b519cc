"""The docs endpoints: ``/``, ``/openapi.json`` (the contract ``orderfast.http.openapi`` writes),
``/docs`` (Swagger UI from the swagger-ui-py wheel, no CDN) and ``/docs/reference``."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from orderfast.http.problems import Problem

# The docs page: Swagger UI from the swagger-ui-py wheel, served by this process, so it works
# offline. The page and its initializer are ours (no inline script: the CSP allows 'self' only);
# validatorUrl null keeps Swagger UI from calling its public validator.
DOCS_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>orderfast API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<noscript>This page needs JavaScript; <a href="/docs/reference">/docs/reference</a> is the same contract as
plain HTML, and <a href="/openapi.json">/openapi.json</a> the machine-readable one.</noscript>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""
DOCS_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false
  });
});
"""


def swagger_static() -> Path:
    """Where the swagger-ui-py wheel keeps the Swagger UI files, found without importing it (which
    would pull in its template engine for nothing)."""
    found = importlib.util.find_spec("swagger_ui")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; it ships the /docs assets")
    return Path(next(iter(found.submodule_search_locations))) / "static"


def load_docs_assets(static: Path) -> dict[str, tuple[bytes, str]]:
    """The Swagger UI files, read once."""
    assets = {name: ((static / name).read_bytes(), kind) for name, kind in DOCS_ASSETS.items()}
    assets["init.js"] = (DOCS_INIT.encode(), "text/javascript; charset=utf-8")
    return assets


# GET /: a newcomer's (or a browser's) first request lands somewhere useful, not on a bare 404.
INDEX = orjson.dumps(
    {
        "service": "orderfast",
        "docs": "/docs",
        "reference": "/docs/reference",
        "openapi": "/openapi.json",
        "health": "/readyz",
    }
)


class OpenApiEndpoints:
    """``/``, ``/openapi.json`` and the docs pages. The contract is built on its first request, not
    at start-up: importing and building it took ~20 ms of every start (twice: in the serving
    process's pre-flight check and in each worker), for pages a worker may never serve."""

    def __init__(self, tax_classes: Callable[[], Sequence[str]] = tuple) -> None:
        """``tax_classes``: the classes in force (the table may be reloaded: the contract follows)."""
        self._tax_classes = tax_classes
        self._built: tuple[tuple[str, ...], bytes, str] | None = None
        self._static = swagger_static()  # checked now: a missing wheel is a start-up error

    @property
    def _contract(self) -> tuple[bytes, str]:
        classes = tuple(sorted(self._tax_classes()))
        if self._built is None or self._built[0] != classes:
            from orderfast.http import openapi

            doc = openapi.spec(classes)
            self._built = (classes, orjson.dumps(doc), openapi._docs_html(doc))
        return self._built[1], self._built[2]

    @functools.cached_property
    def _assets(self) -> dict[str, tuple[bytes, str]]:
        return load_docs_assets(self._static)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/docs", self.docs, methods=["GET"]),
            Route("/docs/reference", self.reference, methods=["GET"]),
            Route("/docs/assets/{name}", self.asset, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        return Response(INDEX, media_type="application/json")

    async def openapi(self, request: Request) -> Response:
        return Response(self._contract[0], media_type="application/json")

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(DOCS_PAGE)

    async def reference(self, request: Request) -> Response:
        return HTMLResponse(self._contract[1])

    async def asset(self, request: Request) -> Response:
        found = self._assets.get(request.path_params["name"])
        if found is None:
            raise Problem(404, "not-found", "Not found", "no such docs asset")
        body, kind = found
        # Versioned with the package: a day in caches is safe.
        return Response(body, headers={"content-type": kind, "cache-control": "public, max-age=86400"})
