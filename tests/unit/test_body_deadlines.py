"""Body-read deadlines: one sweeper for all requests; a deadline answers 408, other cancellations pass."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from orderfast.http.problems import Problem
from orderfast.http.request import BodyDeadlines, BodyLimits, read_json_body


def limits(timeout: float, deadlines: BodyDeadlines | None = None) -> BodyLimits:
    return BodyLimits(64 * 1024, timeout, deadlines or BodyDeadlines())


SCOPE = {"type": "http", "method": "POST", "path": "/v1/quotes", "headers": [(b"content-type", b"application/json")]}


def request(messages: list[dict[str, Any]], stall: asyncio.Event | None = None) -> Request:
    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        assert stall is not None
        await stall.wait()  # a client that stops sending
        return {"type": "http.disconnect"}

    return Request(SCOPE, receive)


def test_a_body_sent_in_time_is_read_whole() -> None:
    async def go() -> bytes:
        parts = [
            {"type": "http.request", "body": b'{"a":', "more_body": True},
            {"type": "http.request", "body": b"1}", "more_body": False},
        ]
        return await read_json_body(request(parts), limits(5))

    assert asyncio.run(go()) == b'{"a":1}'


def test_a_stalled_body_is_a_408_and_the_sweeper_stops_when_idle() -> None:
    async def go() -> tuple[Problem, bool]:
        stall = asyncio.Event()
        parts = [{"type": "http.request", "body": b"{", "more_body": True}]
        deadlines = BodyDeadlines()
        with pytest.raises(Problem) as refused:
            await read_json_body(request(parts, stall), limits(0.2, deadlines))
        sweeper = deadlines._sweeper
        assert sweeper is not None
        await sweeper  # nothing is reading a body any more: it ends by itself
        return refused.value, sweeper.done()

    problem, ended = asyncio.run(go())
    assert (problem.status, problem.slug) == (408, "request-timeout")
    assert ended


def test_another_cancellation_is_not_turned_into_a_408() -> None:
    async def go() -> None:
        stall = asyncio.Event()
        reader = asyncio.create_task(read_json_body(request([], stall), limits(30)))
        await asyncio.sleep(0)  # let it start waiting for the body
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

    asyncio.run(go())
