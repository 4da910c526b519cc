"""Log lines: JSON, and what an exception may put in them (no source lines, no SQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response

from orderfast.app import create_app
from orderfast.config import Secret, Settings
from orderfast.observability.logging import describe


def fail_in_the_database() -> None:
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError as e:
        raise asyncpg.exceptions.PostgresSyntaxError('syntax error at or near "SELECT card FROM secrets"') from e


def test_a_database_error_is_described_by_its_sqlstate_and_frames_only() -> None:
    with pytest.raises(asyncpg.PostgresError) as caught:
        fail_in_the_database()
    doc = describe(caught.value)
    assert doc["type"] == "asyncpg.exceptions.PostgresSyntaxError"
    assert doc["msg"] == "database error 42601"
    assert doc["frames"][-1].endswith(" in fail_in_the_database")
    assert doc["cause"] == {"type": "ConnectionResetError", "msg": "peer went away"}
    assert "SELECT" not in orjson.dumps(doc).decode()


def test_an_unhandled_error_is_a_500_problem_and_one_json_log_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(Settings(data_dir=tmp_path, log_level="info", jwt_secret=Secret("k" * 40)))

    async def boom(request: Request) -> Response:
        fail_in_the_database()
        return Response()

    app.add_route("/boom", boom)

    # raise_app_exceptions: the test fails if the error escapes the app (the server would print
    # its whole traceback, source lines and all).
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom")

    r = asyncio.run(get())
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert "SELECT" not in r.text and "Traceback" not in r.text
    [line] = capsys.readouterr().err.splitlines()
    entry = orjson.loads(line)
    assert (entry["level"], entry["msg"]) == ("error", "unhandled error on GET /boom")
    assert entry["exc"]["msg"] == "database error 42601"
    assert "SELECT" not in line and "Traceback" not in line
