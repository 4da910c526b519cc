"""Pure pieces of the HTTP layer: token verification, cursors, problem documents, readiness."""

from __future__ import annotations

import time

import jwt
import orjson
import pytest
from starlette.requests import Request

from orderfast import _core
from orderfast.http.auth import Principal, TokenVerifier, mint_token
from orderfast.http.health import Health
from orderfast.http.paging import MAX_PAGE, decode_cursor, encode_cursor, page_response, parse_limit
from orderfast.http.problems import Problem
from tests.unit.fakes import FakeStore

SECRET = "k" * 40


def test_tokens_round_trip_to_principals() -> None:
    p = TokenVerifier(SECRET).verify("Bearer " + mint_token(SECRET, "u-1", ["admin"]))
    assert p.user_id == "u-1" and p.is_admin


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Token abc",
        "Bearer " + jwt.encode({"sub": "u", "exp": 2**31}, "k" * 64, algorithm="HS512"),
        "Bearer " + jwt.encode({"exp": 2**31}, "k" * 40, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": "u"}, "k" * 40, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": "u", "exp": 2**31, "roles": "admin"}, "k" * 40, algorithm="HS256"),
        "Bearer " + mint_token("z" * 40, "u"),
        # NumericDate claims are JSON numbers, never numeric strings or booleans.
        "Bearer " + jwt.encode({"sub": "u", "exp": str(2**31)}, "k" * 40, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": "u", "exp": 2**31, "iat": "1"}, "k" * 40, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": "u", "exp": 2**31, "nbf": True}, "k" * 40, algorithm="HS256"),
    ],
)
def test_bad_tokens_are_401(header: str | None) -> None:
    with pytest.raises(Problem) as info:
        TokenVerifier(SECRET).verify(header)
    assert info.value.status == 401


def test_cursor_round_trip() -> None:
    oid = "01a2000a-27cb-77b1-bbf8-279bb7785418"
    assert decode_cursor(encode_cursor(oid), _core.is_order_id) == oid
    with pytest.raises(Problem):
        decode_cursor(encode_cursor("not-an-id"), _core.is_order_id)


def test_a_cursor_is_checked_against_its_own_listing_key() -> None:
    # A SKU is a key of the product listing, not of the order listing.
    assert decode_cursor(encode_cursor("SKU-1.a_b"), _core.is_sku) == "SKU-1.a_b"
    for cursor in [encode_cursor("SKU-1"), "", "!!!", encode_cursor("é")]:
        with pytest.raises(Problem) as info:
            decode_cursor(cursor, _core.is_order_id)
        assert (info.value.status, info.value.slug) == (400, "invalid-cursor")


@pytest.mark.parametrize("text", ["0", str(MAX_PAGE + 1), "-1", "ten", "1.5", "", " 5", "\u0665"])
def test_bad_limits_are_400(text: str) -> None:
    with pytest.raises(Problem) as info:
        parse_limit(text)
    assert (info.value.status, info.value.slug) == (400, "invalid-limit")


def test_limit_defaults_to_20_and_takes_1_to_100() -> None:
    assert (parse_limit(None), parse_limit("1"), parse_limit(str(MAX_PAGE))) == (20, 1, MAX_PAGE)


@pytest.mark.parametrize(("rows", "cursor"), [(["a", "b", "c"], "b"), (["a", "b"], None), (["a"], None)])
def test_a_page_has_a_next_cursor_only_when_a_row_beyond_it_was_read(rows: list[str], cursor: str | None) -> None:
    page = orjson.loads(page_response(rows, 2, lambda r: r, lambda r: {"k": r}).body)
    assert page == {
        "items": [{"k": r} for r in rows[:2]],
        "next_cursor": None if cursor is None else encode_cursor(cursor),
    }


def test_problem_document() -> None:
    doc = Problem(422, "validation-error", "Invalid", "bad", errors=[("/a", "c", "m")]).document("/x")
    assert doc == {
        "type": "/problems/validation-error",
        "title": "Invalid",
        "status": 422,
        "detail": "bad",
        "instance": "/x",
        "errors": [{"pointer": "/a", "code": "c", "detail": "m"}],
    }


@pytest.mark.anyio
async def test_readiness_follows_the_database() -> None:
    store = FakeStore()
    health = Health(store)
    request = Request({"type": "http", "method": "GET", "path": "/readyz", "headers": []})
    assert (await health.readyz(request)).status_code == 503, "not ready before startup completes"
    assert (await health.startupz(request)).status_code == 503
    health.started = True
    assert (await health.readyz(request)).status_code == 200
    store.healthy = False
    assert (await health.readyz(request)).status_code == 503
    assert (await health.livez(request)).status_code == 200, "liveness ignores the database"


def test_verified_tokens_are_remembered_only_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []

    class Counting(TokenVerifier):
        def _decode(self, token: str) -> tuple[Principal, float]:
            decoded.append(token)
            return super()._decode(token)

    verifier = Counting(SECRET, cache_size=2)
    token = mint_token(SECRET, "u-1", ttl=60)
    first = verifier.verify("Bearer " + token)
    assert verifier.verify("Bearer " + token) is first
    assert decoded == [token], "the second use comes from the cache"
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 60 + 31)
    verifier.verify("Bearer " + token)
    assert decoded == [token, token], "past exp + leeway the token is verified again"
    monkeypatch.setattr(time, "time", real_time)
    for sub in ["a", "b", "c"]:  # more distinct tokens than the cache holds
        assert verifier.verify("Bearer " + mint_token(SECRET, sub)).user_id == sub
    with pytest.raises(Problem):
        verifier.verify("Bearer " + token[:-2] + "xx")  # a tampered token is never a cache hit


def test_client_address_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    from orderfast.config import Settings
    from orderfast.http.guard import client_address

    def parse_networks(text: str) -> list[object]:
        return list(Settings.from_env({"ORDERFAST_TRUSTED_PROXIES": text}).trusted_proxies)

    trusted = parse_networks("10.0.0.0/8, 127.0.0.1")
    assert client_address("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9", "an untrusted peer is the client"
    assert client_address("10.1.2.3", "1.2.3.4", trusted) == "1.2.3.4"
    assert client_address("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.9.9.9", trusted) == "1.2.3.4", "spoofed left hops ignored"
    assert client_address("10.1.2.3", "10.0.0.1, 10.0.0.2", trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "not-an-ip", trusted) == "not-an-ip"
    assert client_address("10.1.2.3", None, trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "1.2.3.4", []) == "10.1.2.3", "no trusted proxies: never believed"
    with pytest.raises(ValueError):
        parse_networks("bogus")


@pytest.mark.anyio
async def test_api_keys_with_underscores_in_their_secret_part_verify() -> None:
    from orderfast.services.api_keys import ApiKeyService
    from orderfast.services.errors import InvalidCredentials

    store = FakeStoreWithKeys()
    keys = ApiKeyService(store)  # type: ignore[arg-type]
    for _ in range(200):  # token_urlsafe draws '_' and '-' often: every shape must verify
        key, record = await keys.create("k", ["service"])
        assert await keys.authenticate(key) == (f"key:{record.prefix}", frozenset({"service"}))
    with pytest.raises(InvalidCredentials):
        await keys.authenticate(key + "x")
    assert await keys.revoke(record.prefix)
    with pytest.raises(InvalidCredentials):
        await keys.authenticate(key)


class FakeStoreWithKeys:
    def __init__(self) -> None:
        self.keys: dict[str, object] = {}
        self.lookups = 0

    async def put_api_key(self, record: object) -> None:
        self.keys[record.prefix] = record  # type: ignore[attr-defined]

    async def get_api_key(self, prefix: str) -> object:
        self.lookups += 1
        return self.keys.get(prefix)

    async def revoke_api_key(self, prefix: str) -> bool:
        from dataclasses import replace
        from datetime import UTC, datetime

        record = self.keys.get(prefix)
        if record is None:
            return False
        self.keys[prefix] = replace(record, revoked_at=datetime.now(UTC))  # type: ignore[type-var]
        return True


def test_a_token_signed_with_another_key_says_so_without_saying_more() -> None:
    with pytest.raises(Problem) as info:
        TokenVerifier(SECRET).verify("Bearer " + mint_token("z" * 40, "u"))
    assert info.value.status == 401 and "matches no key this server holds" in str(info.value.detail)
    assert "z" * 8 not in str(info.value.detail) and SECRET[:8] not in str(info.value.detail)


@pytest.mark.anyio
async def test_a_flood_of_unknown_prefixes_does_not_evict_real_keys() -> None:
    # Misses are remembered apart from found keys, each bounded: prefixes that match nothing (a
    # guesser's, from many addresses) never push a real key out of the cache.
    from orderfast.services.api_keys import ApiKeyService
    from orderfast.services.errors import InvalidCredentials

    store = FakeStoreWithKeys()
    keys = ApiKeyService(store)  # type: ignore[arg-type]
    key, _ = await keys.create("k", ["service"])
    await keys.authenticate(key)
    for n in range(25_000):
        with pytest.raises(InvalidCredentials):
            await keys.authenticate(f"of_{n:08x}_{'s' * 43}")
    assert keys.remembers(key), "still cached: answered without the database"
    lookups = store.lookups
    await keys.authenticate(key)
    assert store.lookups == lookups
