"""Keyset paging, one way for every list endpoint: ``limit``, the opaque cursor, the page document.

A cursor is the last key of the page before, base64url without padding: opaque to clients (they
pass ``next_cursor`` back unchanged), and checked against the key's own rule when it comes back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from orderfast.http.problems import Problem

DEFAULT_PAGE = 20
MAX_PAGE = 100
JSON = "application/json"
T = TypeVar("T")


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, valid: Callable[[str], bool]) -> str:
    """The key ``cursor`` encodes; 400 unless it is one ``valid`` accepts."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError):
        key = ""
    if not valid(key):
        raise Problem(400, "invalid-cursor", "Invalid cursor", "use next_cursor from a previous page")
    return key


def parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise Problem(400, "invalid-limit", "Invalid limit", f"limit must be 1 to {MAX_PAGE}")
    return int(text)


def page_request(request: Request, valid: Callable[[str], bool]) -> tuple[int, str | None]:
    """The page asked for: its ``limit``, and the key it starts after (None for the first page)."""
    limit = parse_limit(request.query_params.get("limit"))
    cursor = request.query_params.get("cursor")
    return limit, None if cursor is None else decode_cursor(cursor, valid)


def page_response(rows: Sequence[T], limit: int, key: Callable[[T], str], item: Callable[[T], Any]) -> Response:
    """``{"items", "next_cursor"}`` from up to ``limit + 1`` rows in the listing's key order: the extra
    row tells whether another page exists without a count query, so the last page's cursor is null."""
    page = rows[:limit]
    next_cursor = encode_cursor(key(page[-1])) if len(rows) > limit else None
    return Response(orjson.dumps({"items": [item(r) for r in page], "next_cursor": next_cursor}), media_type=JSON)
