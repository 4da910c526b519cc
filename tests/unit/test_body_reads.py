"""Reading a body costs as few trips to the server as it can: Granian answers each ``receive()``
through its Rust runtime and a wake-up of the event loop (~10-20 µs of the worker's thread each,
``python bench/request_cost.py``), and it marks the last chunk of a body ``more_body`` all the same —
the end comes as an empty message of its own. A body of known length is done when that many bytes
have come, and a declared empty body needs no receive at all."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from orderfast.http.problems import Problem
from orderfast.http.request import BodyDeadlines, BodyLimits, read_json_body

LIMITS = BodyLimits(64 * 1024, 5, BodyDeadlines())


def request(headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]) -> tuple[Request, list[int]]:
    """A request whose receive hands out ``messages`` and fails the test if asked for more."""
    calls = [0]

    async def receive() -> dict[str, Any]:
        calls[0] += 1
        assert messages, "received past the end of the body"
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/v1/quotes", "headers": headers}
    return Request(scope, receive), calls


def typed(length: int | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return headers


def test_a_body_of_declared_length_takes_one_receive_when_it_comes_whole() -> None:
    body = b'{"currency":"USD"}'
    req, calls = request(typed(len(body)), [{"type": "http.request", "body": body, "more_body": True}])
    assert asyncio.run(read_json_body(req, LIMITS)) == body
    assert calls[0] == 1


def test_a_body_of_declared_length_in_pieces_takes_one_receive_per_piece() -> None:
    pieces = [b'{"curr', b'ency":', b'"USD"}']
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    req, calls = request(typed(sum(map(len, pieces))), messages)
    assert asyncio.run(read_json_body(req, LIMITS)) == b"".join(pieces)
    assert calls[0] == 3


def test_a_declared_empty_body_takes_no_receive() -> None:
    req, calls = request(typed(0), [])
    assert asyncio.run(read_json_body(req, LIMITS)) == b""
    assert calls[0] == 0


def test_a_chunked_body_is_read_to_its_end_message() -> None:
    messages = [
        {"type": "http.request", "body": b'{"a":1}', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    req, calls = request(typed(None), messages)
    assert asyncio.run(read_json_body(req, LIMITS)) == b'{"a":1}'
    assert calls[0] == 2


def test_a_body_that_ends_short_of_its_declared_length_is_unreadable() -> None:
    messages = [{"type": "http.request", "body": b'{"a":', "more_body": True}, {"type": "http.disconnect"}]
    req, _ = request(typed(100), messages)
    with pytest.raises(Problem) as refused:
        asyncio.run(read_json_body(req, LIMITS))
    assert (refused.value.status, refused.value.slug) == (400, "body-unreadable")
