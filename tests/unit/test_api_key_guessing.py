"""Guessing API keys costs the guesser, not the database: a key this worker has not looked up lately
takes a token from the client address's quota *before* the database is asked, so once that quota is
spent, further guesses are answered 429 without a lookup (a random prefix per request would
otherwise cost one query each, whatever the quota said)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import orjson
import pytest

from orderfast import bootstrap
from orderfast.app import create_app
from orderfast.config import Settings
from orderfast.store.base import StoreUnavailable
from orderfast.store.sqlite.store import SqliteStore
from tests.unit.asgi import http_scope

pytestmark = pytest.mark.anyio


async def guesses(tmp_path: Path, count: int, **env: str) -> list[dict[str, Any]]:
    """Migrates a SQLite store, serves the app and sends ``count`` requests, each with a new guessed
    key from one address: the messages the app sent back."""
    settings = Settings.from_env({"ORDERFAST_DATA_DIR": str(tmp_path), "ORDERFAST_JWT_SECRET": "k" * 40, **env})
    async with bootstrap.opened_store(settings, check_schema=False, budget=False) as store:
        await store.migrate()
    app = create_app(settings)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        for _ in range(count):
            scope = http_scope("/v1/events")
            scope["headers"] = [(b"host", b"x"), (b"x-api-key", f"of_{secrets.token_hex(4)}_{'s' * 43}".encode())]
            await app(scope, receive, send)
    return sent


async def test_guesses_past_the_address_quota_never_reach_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = SqliteStore.get_api_key

    async def counted(self: SqliteStore, prefix: str) -> Any:
        lookups.append(prefix)
        return await real(self, prefix)

    monkeypatch.setattr(SqliteStore, "get_api_key", counted)
    sent = await guesses(tmp_path, 20, ORDERFAST_RATELIMIT_IP="5/60", ORDERFAST_RATELIMIT_IP_BURST="5")
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [401] * 5 + [429] * 15
    assert len(lookups) == 5


async def test_an_api_key_the_database_cannot_check_is_a_503_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(self: SqliteStore, prefix: str) -> Any:
        raise StoreUnavailable("the database cannot be reached")

    monkeypatch.setattr(SqliteStore, "get_api_key", unreachable)  # migrate does not look keys up
    sent = await guesses(tmp_path, 1)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert start["status"] == 503, body
    assert (b"retry-after", b"1") in start["headers"]
    assert orjson.loads(body)["type"] == "/problems/store-unavailable"
