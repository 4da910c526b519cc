"""Security headers on every response — and, while the server drains before stopping, ``Connection:
close``: written by the request observer's send wrapper (``complete``) and by admission control on
the answers it sheds (``for_path``)."""

from __future__ import annotations

from collections.abc import Iterable

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
# Scope key: header fields an inner layer adds to whatever answer the request gets (the guard's
# rate-limit fields); the request observer writes them.
RESPONSE_FIELDS = "orderfast.response_fields"
NO_STORE = (b"cache-control", b"no-store")


def for_path(path: str) -> list[tuple[bytes, bytes]]:
    """The headers a response to ``path`` carries unless it sets them itself."""
    return [*HEADERS, DOCS_CSP if path.startswith("/docs") else API_CSP, NO_STORE]


def complete(
    headers: Iterable[tuple[bytes, bytes]],
    path: str,
    fields: list[tuple[bytes, bytes]] | None,
    request_id: tuple[bytes, bytes],
    draining: bool,
) -> list[tuple[bytes, bytes]]:
    """A response's headers as they leave the app: its own, then the fields an inner layer asked
    for (``scope[RESPONSE_FIELDS]``: the rate limits), the request id, the security headers it did
    not set itself, and ``Connection: close`` while the server drains. One pass, in the request
    observer's one send wrapper: every layer that wraps ``send`` costs each response a call."""
    out = list(headers)
    present = {name for name, _ in out}
    if fields:
        out += fields
    out.append(request_id)
    out += [h for h in for_path(path) if h[0] not in present]
    if draining:
        out.append(CLOSE)
    return out
