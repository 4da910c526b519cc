"""Conditional GETs (RFC 9110 §8.8, §13): a strong ``ETag`` on a resource's representation and
``304 Not Modified`` for a client that already holds it.

The tags come from what already versions the resource, so no body is hashed: an order's document
changes exactly when its ``sequence`` does (every change is an event), a product's when its catalog
``version`` or its stock does. A client that revalidates gets a 304 — no body to send, parse or
store — though the server still reads the row: the database is the authority for both.

Responses are ``Cache-Control: private, no-cache``: they answer an authenticated request and an order
is personal data, so no shared cache may keep them, and a client's own cache must revalidate before
reusing one (prices and stock change).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

CACHE_CONTROL = "private, no-cache"
JSON = "application/json"


def etag(*parts: object) -> str:
    return '"' + ".".join(str(p) for p in parts) + '"'


def _matches(header: str, tag: str) -> bool:
    """If-None-Match uses the weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches any."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def conditional(request: Request, tag: str, body: bytes) -> Response:
    """``body`` with its tag, or a bodiless 304 when the client's copy is current."""
    headers = {"etag": tag, "cache-control": CACHE_CONTROL}
    held = request.headers.get("if-none-match")
    if held is not None and _matches(held, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type=JSON)
