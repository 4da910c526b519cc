"""Security headers on every response, as pure ASGI middleware (outermost but for admission control,
which writes the same headers on the answers it sheds: ``for_path``) — and, while the server drains
before stopping, ``Connection: close``."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# JSON answers load nothing; the docs page loads only its own bundled scripts and styles.
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; frame-ancestors 'none'",
)


CLOSE = (b"connection", b"close")
NO_STORE = (b"cache-control", b"no-store")


def for_path(path: str) -> list[tuple[bytes, bytes]]:
    """The headers a response to ``path`` carries unless it sets them itself."""
    return [*HEADERS, DOCS_CSP if path.startswith("/docs") else API_CSP, NO_STORE]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, draining: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self._draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [h for h in for_path(path) if h[0] not in present]
                if self._draining():
                    extra.append(CLOSE)
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
