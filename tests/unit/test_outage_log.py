"""An outage refuses every request: one log line per second says so, with how many refusals it
stands for, instead of one line per request (thousands a second would flood the log pipeline)."""

from __future__ import annotations

import logging

import pytest
from starlette.requests import Request

from orderfast.http import errors, problems
from orderfast.store.base import StoreUnavailable
from tests.unit.asgi import http_scope

pytestmark = pytest.mark.anyio


async def test_an_outage_is_logged_once_a_second_with_the_count_left_out(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(problems, "OUTAGE_LINES", problems.Throttle(1.0, clock=lambda: now[0]))
    request = Request(http_scope("/v1/orders", "POST"))
    handler = errors.EXCEPTION_HANDLERS[StoreUnavailable]
    with caplog.at_level(logging.WARNING, logger="orderfast.http"):
        for _ in range(500):
            response = await handler(request, StoreUnavailable("connection refused"))
            assert response.status_code == 503
        assert len(caplog.records) == 1
        now[0] += 1.0
        await handler(request, StoreUnavailable("connection refused"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("database unavailable on POST /v1/orders: connection refused")
    assert "499 more" in lines[1]
