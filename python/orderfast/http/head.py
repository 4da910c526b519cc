"""Request heads that cannot be read one way only are refused before anything else runs.

An HTTP/1.1 request names exactly one ``Host`` (RFC 9112 §3.2); Granian hands a request that sent
none an empty one, and an empty Host (allowed only for a target without an authority, which no
orderfast URL is) is refused alike. A credential, an idempotency key, a webhook signature or a
content type sent twice has no single meaning: one layer could read the first, another the last (a
bad token then a good one used to pass), so the request is refused with a 400 problem instead of
guessing."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from orderfast.http.problems import Problem

SINGLE = (b"authorization", b"x-api-key", b"idempotency-key", b"orderfast-signature", b"content-type")
# Granian refuses a head past its 80 KiB read buffer somewhere between 80 and ~120 KiB, depending on
# how the bytes arrive; this is the exact limit orderfast documents: the fields' names and values.
MAX_HEAD_BYTES = 64 * 1024


def _ambiguous(name: str, detail: str) -> Problem:
    return Problem(400, "ambiguous-header", "Ambiguous request header", detail, extra={"header": name})


class HeadRules:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = check(scope)
            if problem is not None:
                await problem.response(scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def check(scope: Scope) -> Problem | None:
    hosts = empty_hosts = size = 0
    seen: list[bytes] = []
    for name, value in scope["headers"]:
        size += len(name) + len(value)
        if name == b"host":
            hosts += 1
            empty_hosts += not value
        elif name in SINGLE:
            if name in seen:
                return _ambiguous(name.decode(), f"send {name.decode()} once")
            seen.append(name)
    if size > MAX_HEAD_BYTES:
        return Problem(
            431, "headers-too-large", "Request header fields too large", f"the header limit is {MAX_HEAD_BYTES} bytes"
        )
    if hosts > 1 or (scope["http_version"] == "1.1" and (hosts == 0 or empty_hosts)):
        return Problem(400, "bad-host", "Bad Host header", "an HTTP/1.1 request names exactly one Host")
    return None
