"""What the independent security probe found (issue 9), replayed against a real server on both stores:
each case answers a clean 4xx problem, writes nothing it refuses, and leaves the server serving."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable

import asyncpg
import httpx
import jwt
import orjson
import pytest

from orderfast.services.payments import sign
from tests.conftest import JWT_SECRET, WEBHOOK_SECRET, run_blocking
from tests.e2e.conftest import Server
from tests.e2e.test_orders import PROBLEM, assert_problem, new_sku, order_body, post

SECURITY_HEADERS = ("x-content-type-options", "content-security-policy", "x-frame-options", "referrer-policy")


def exchange(server: Server, request: bytes, timeout: float = 10) -> bytes:
    """Sends raw bytes and reads until the server closes or a whole response has arrived."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(body) >= length:
                    break
        return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


# -- 1. timestamps the stores cannot hold ---------------------------------------------------------

OUT_OF_RANGE = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "2026-13-01T00:00:00Z",
    "2026-12-01",
    "20261201T000000Z",
]


@pytest.mark.parametrize("when", OUT_OF_RANGE)
def test_catalog_timestamps_out_of_range_are_422_and_write_nothing(server: Server, when: str) -> None:
    sku = new_sku(server)
    pid, code = f"p-{uuid.uuid4().hex[:8]}", f"C{uuid.uuid4().hex[:8]}"
    with server.client("admin-1", "admin") as admin:
        for field in ("ends_at", "starts_at"):
            r = admin.put(f"/v1/promotions/{pid}", json={"skus": [sku], "percent_off": "5", field: when})
            doc = assert_problem(r, 422, "validation-error")
            assert [e["pointer"] for e in doc["errors"]] == [f"/{field}"]  # type: ignore[attr-defined]
        assert_problem(admin.get(f"/v1/promotions/{pid}"), 404, "not-found")
        r = admin.put(f"/v1/coupons/{code}", json={"currency": "USD", "percent_off": "5", "expires_at": when})
        assert_problem(r, 422, "validation-error")
        assert_problem(admin.get(f"/v1/coupons/{code}"), 404, "not-found")
    with server.client("buyer") as c:  # the catalog still refreshes and prices
        q = c.post("/v1/quotes", json=order_body((sku, 1)))
        assert q.status_code == 200, q.text
        assert post(c, order_body((sku, 1))).status_code == 201


def test_catalog_timestamps_at_the_edges_of_the_range_are_accepted(server: Server) -> None:
    sku = new_sku(server)
    pid = f"p-{uuid.uuid4().hex[:8]}"
    with server.client("admin-1", "admin") as admin:
        r = admin.put(
            f"/v1/promotions/{pid}",
            json={
                "skus": [sku],
                "percent_off": "5",
                "starts_at": "1970-01-01T00:00:00Z",
                "ends_at": "9999-12-30T23:59:59+00:00",
            },
        )
        assert r.status_code == 201, r.text
    # Every worker prices with it within its catalog refresh interval: poll, bounded.
    deadline = time.monotonic() + 10
    with server.client("buyer") as c:
        while True:
            q = c.post("/v1/quotes", json=order_body((sku, 1)))
            assert q.status_code == 200, q.text
            if q.json()["discount"] != "0.00" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert q.json()["discount"] == "0.50", q.text


# -- 4. malformed chunked bodies ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/payments/webhook", "/v1/quotes", "/v1/orders"])
def test_a_malformed_chunked_body_is_a_400_problem(server: Server, path: str) -> None:
    token = server.token("chunky")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {uuid.uuid4().hex}\r\n"
        f"Orderfast-Signature: t=1,v1=00\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + b"zz\r\n{}\r\n0\r\n\r\n"
    answer = exchange(server, request)
    assert status_of(answer) == 400, answer[:300]
    assert b"application/problem+json" in answer.lower()
    log = server.log_path.read_text()
    assert "Traceback" not in log and '"level": "ERROR"' not in log.replace('"level":"ERROR"', '"level": "ERROR"')


# -- 5. NUL characters ----------------------------------------------------------------------------


def test_nul_in_catalog_text_is_422(server: Server) -> None:
    with server.client("admin-1", "admin") as admin:
        r = admin.put("/v1/products/NUL-1", json={"name": "a\u0000b", "price": "1", "currency": "USD", "stock": 1})
        doc = assert_problem(r, 422, "validation-error")
        assert doc["errors"][0]["pointer"] == "/name"  # type: ignore[index]
        assert_problem(admin.get("/v1/products/NUL-1"), 404, "not-found")
        r = admin.post("/v1/api-keys", json={"name": "k\u0000", "roles": ["service"]})
        assert_problem(r, 422, "validation-error")


def test_nul_in_a_token_subject_is_401(server: Server) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "u\u0000x", "iat": now, "exp": now + 60}, JWT_SECRET, algorithm="HS256")
    r = httpx.get(f"{server.base_url}/v1/orders", headers={"authorization": f"Bearer {token}"})
    assert_problem(r, 401, "unauthorized")


def test_nul_in_a_webhook_event_id_is_422(server: Server) -> None:
    body = orjson.dumps(
        {"event_id": "e\u0000", "order_id": str(uuid.uuid4()), "status": "succeeded", "amount": "1", "currency": "USD"}
    )
    r = httpx.post(
        f"{server.base_url}/v1/payments/webhook",
        content=body,
        headers={
            "content-type": "application/json",
            "orderfast-signature": sign(WEBHOOK_SECRET, int(time.time()), body),
        },
    )
    assert_problem(r, 422, "validation-error")


# -- 7. ambiguous duplicate headers ---------------------------------------------------------------


def raw_get(server: Server, path: str, headers: list[tuple[str, str]]) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return exchange(server, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{lines}\r\n".encode())


def test_two_credentials_are_a_400(server: Server) -> None:
    good = f"Bearer {server.token('dup')}"
    for headers in (
        [("Authorization", "Bearer bad"), ("Authorization", good)],
        [("Authorization", good), ("Authorization", good)],
        [("X-API-Key", "of_bad"), ("X-API-Key", "of_bad2")],
    ):
        answer = raw_get(server, "/v1/orders", headers)
        assert status_of(answer) == 400, answer[:300]
        assert b"ambiguous-header" in answer


def test_two_idempotency_keys_are_a_400(server: Server) -> None:
    sku = new_sku(server)
    body = orjson.dumps(order_body((sku, 1)))
    request = (
        f"POST /v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token('dup')}\r\nIdempotency-Key: a-1\r\nIdempotency-Key: a-2\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    answer = exchange(server, request)
    assert status_of(answer) == 400, answer[:300]
    assert b"ambiguous-header" in answer


# -- 8. NumericDate claims ------------------------------------------------------------------------


@pytest.mark.parametrize("claims", [{"exp": "9999999999"}, {"iat": "1", "exp": 9999999999}, {"exp": True}])
def test_token_dates_must_be_numbers(server: Server, claims: dict[str, object]) -> None:
    token = jwt.encode({"sub": "u-num", **claims}, JWT_SECRET, algorithm="HS256")
    r = httpx.get(f"{server.base_url}/v1/orders", headers={"authorization": f"Bearer {token}"})
    assert_problem(r, 401, "unauthorized")


# -- 9. the notes: Host, content types, duplicate keys, nesting -----------------------------------


def test_http11_without_host_or_with_two_is_400(server: Server) -> None:
    no_host = exchange(server, b"GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(no_host) == 400, no_host[:300]
    two = exchange(server, b"GET /livez HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n")
    assert status_of(two) == 400, two[:300]
    ok = exchange(server, b"GET /livez HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(ok) == 200


def test_a_body_without_content_type_is_415(server: Server) -> None:
    sku = new_sku(server)
    with server.client("ct") as c:
        r = c.post("/v1/quotes", content=orjson.dumps(order_body((sku, 1))))
        assert_problem(r, 415, "unsupported-media-type")
        r = post(c, order_body((sku, 1)), **{"content-type": ""})
        assert_problem(r, 415, "unsupported-media-type")


def test_duplicate_keys_are_refused_in_every_body(server: Server) -> None:
    with server.client("admin-1", "admin") as admin:
        raw = b'{"name": "a", "name": "b", "price": "1", "currency": "USD", "stock": 1}'
        r = admin.put("/v1/products/DUP-1", content=raw, headers={"content-type": "application/json"})
        doc = assert_problem(r, 422, "validation-error")
        assert doc["errors"][0]["code"] == "duplicate_key"  # type: ignore[index]
        assert_problem(admin.get("/v1/products/DUP-1"), 404, "not-found")


def test_deep_nesting_is_400_everywhere(server: Server) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000
    with server.client("admin-1", "admin") as c:
        for path, body in (
            ("/v1/quotes", b'{"currency": "USD", "items": ' + deep + b"}"),
            ("/v1/products/DEEP-1", b'{"name": ' + deep + b"}"),
        ):
            method = "PUT" if "products" in path else "POST"
            r = c.request(method, path, content=body, headers={"content-type": "application/json"})
            assert_problem(r, 400, "malformed-json")
        r = post(c, {"currency": "USD", "items": [[[[[]]]]]})
        assert r.status_code in (400, 422)


def test_every_problem_carries_the_security_headers(server: Server) -> None:
    for answer in (
        exchange(server, b"GET /v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        exchange(
            server,
            b"POST /v1/payments/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        ),
    ):
        head = answer.partition(b"\r\n\r\n")[0].lower()
        for name in SECURITY_HEADERS:
            assert name.encode() in head, (name, head)
    assert PROBLEM


def test_nul_in_a_path_is_a_404_not_a_500(server: Server) -> None:
    with server.client("admin-1", "admin") as admin:
        for method, path in (
            ("GET", "/v1/orders/%00"),
            ("POST", "/v1/orders/%00/cancel"),
            ("GET", "/v1/products/%00"),
            ("GET", "/v1/coupons/A%00"),
            ("GET", "/v1/promotions/p%00"),
            ("DELETE", "/v1/api-keys/of%00"),
        ):
            r = admin.request(method, path)
            assert r.status_code == 404, (method, path, r.text)


def test_a_lone_surrogate_in_a_token_subject_is_401(server: Server) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "u\ud800", "iat": now, "exp": now + 60}, JWT_SECRET, algorithm="HS256")
    r = httpx.get(f"{server.base_url}/v1/orders", headers={"authorization": f"Bearer {token}"})
    assert_problem(r, 401, "unauthorized")


def test_a_server_starts_and_serves_over_catalog_rows_it_cannot_load(
    tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str]
) -> None:
    """The row an earlier version stored (-infinity) used to fail start-up ("ASGI lifespan startup
    failed"): now the server starts, logs the row, and prices everything else."""
    dsn = pg_database_factory()
    srv = Server(tmp_path_factory.mktemp("e2e-bad-row"), {"ORDERFAST_DATABASE_URL": dsn}, workers=1)
    srv.cli("migrate", "--seed-demo")

    async def break_a_row() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO promotions (id, skus, percent_off, min_quantity, ends_at, version, updated_at) "
                "VALUES ('old', ARRAY['SKU-1'], '5', 1, '-infinity', nextval('catalog_version'), now())"
            )
        finally:
            await conn.close()

    run_blocking(break_a_row)
    srv.start()
    try:
        with srv.client("buyer") as c:
            q = c.post("/v1/quotes", json=order_body(("SKU-1", 1)))
            assert q.status_code == 200 and q.json()["discount"] == "0.00", q.text
        with srv.client("admin-1", "admin") as admin:
            got = admin.get("/v1/promotions/old")
            assert got.status_code == 200 and got.json()["ends_at"] is None, got.text
        assert "'old'" in srv.log_path.read_text()
    finally:
        srv.stop()


# -- the rest of their kind: text that passes str.isdigit() but not int() ------------------------


def raw_webhook(server: Server, headers: bytes) -> bytes:
    """A webhook POST of ``{}`` with the given raw header lines (each ending in CRLF)."""
    return exchange(
        server,
        b"POST /v1/payments/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + headers
        + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    )


def test_unicode_digits_in_numbers_are_4xx(server: Server) -> None:
    with server.client("ops", "admin") as c:
        for path in ("/v1/orders?limit=%C2%B2", "/v1/events?after=%C2%B2", "/v1/events?limit=%C2%B2"):
            r = c.get(path)
            assert r.status_code == 400, (path, r.text)
    # A signature timestamp of U+00B2 (one latin-1 byte) is an invalid signature, not a 500.
    answer = raw_webhook(server, b"Orderfast-Signature: t=\xb2,v1=00\r\n")
    assert status_of(answer) == 401, answer[:300]


def test_two_signatures_or_two_content_types_are_a_400(server: Server) -> None:
    for extra in (
        b"Orderfast-Signature: t=1,v1=00\r\nOrderfast-Signature: t=2,v1=00\r\n",
        b"Content-Type: text/plain\r\n",
    ):
        answer = raw_webhook(server, extra)
        assert status_of(answer) == 400 and b"ambiguous-header" in answer, answer[:300]


def test_a_websocket_upgrade_is_answered_as_plain_http(server: Server) -> None:
    answer = exchange(
        server,
        b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert status_of(answer) == 200, answer[:300]


def test_starlettes_own_404_and_405_titles_match_the_apps(server: Server) -> None:
    missing = httpx.get(f"{server.base_url}/no/such/path")
    assert assert_problem(missing, 404, "not-found")["title"] == "Not found"
    wrong = httpx.delete(f"{server.base_url}/livez")
    assert assert_problem(wrong, 405, "method-not-allowed")["title"] == "Method not allowed"


def test_the_root_points_to_the_docs(server: Server) -> None:
    r = httpx.get(f"{server.base_url}/")
    assert r.status_code == 200 and r.json()["docs"] == "/docs"
    assert httpx.get(f"{server.base_url}{r.json()['openapi']}").status_code == 200
