"""POST/GET /v1/orders through a real Granian process, on both stores."""

from __future__ import annotations

import re
import uuid

import httpx
import orjson

from tests.e2e.conftest import Server, order_body

PROBLEM = "application/problem+json"
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def someone() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def new_sku(server: Server, price: str = "10.00", stock: int = 100, currency: str = "USD") -> str:
    sku = f"T-{uuid.uuid4().hex[:10]}"
    with server.client("admin-1", "admin") as admin:
        r = admin.put(
            f"/v1/products/{sku}",
            json={"name": f"Test {sku}", "price": price, "currency": currency, "stock": stock},
        )
        assert r.status_code == 201, r.text
    return sku


def post(client: httpx.Client, body: object, key: str | None = "auto", **headers: str) -> httpx.Response:
    h = dict(headers)
    if key is not None:
        h["idempotency-key"] = uuid.uuid4().hex if key == "auto" else key
    return client.post("/v1/orders", content=orjson.dumps(body), headers={"content-type": "application/json", **h})


def assert_problem(r: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert doc["type"] == f"/problems/{slug}"
    assert doc["status"] == status
    assert doc["title"]
    return doc  # type: ignore[no-any-return]


def test_create_order(server: Server) -> None:
    sku = new_sku(server, price="99.50")
    customer = someone()
    with server.client(customer) as c:
        r = post(c, order_body((sku, 2), expected_total="199.00"))
    assert r.status_code == 201, r.text
    doc = r.json()
    assert r.headers["location"] == f"/v1/orders/{doc['id']}"
    assert UUID7.match(doc["id"])
    assert doc["status"] == "PENDING_PAYMENT"
    assert doc["customer_id"] == customer
    assert doc["currency"] == "USD"
    assert doc["lines"] == [
        {
            "sku": sku,
            "name": f"Test {sku}",
            "quantity": 2,
            "unit_price": "99.50",
            "discount": "0.00",
            "tax": "0.00",
            "tax_rate": "0",
            "total": "199.00",
        }
    ]
    assert (doc["subtotal"], doc["discount"], doc["tax"], doc["total"]) == ("199.00", "0.00", "0.00", "199.00")
    assert (doc["coupon"], doc["prices_include_tax"]) == (None, False)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", doc["created_at"])
    assert "idempotent-replayed" not in r.headers


def test_order_is_durable_and_readable_by_its_owner_only(server: Server) -> None:
    sku = new_sku(server)
    owner = someone()
    with server.client(owner) as c:
        created = post(c, order_body((sku, 1)))
        assert created.status_code == 201
        fetched = c.get(created.headers["location"])
    assert fetched.status_code == 200
    assert fetched.content == created.content, "GET shows the order exactly as the create answered it"
    with server.client(someone()) as stranger:
        assert_problem(stranger.get(created.headers["location"]), 404, "not-found")
    with server.client("ops", "admin") as admin:
        assert admin.get(created.headers["location"]).json() == created.json()


def test_malformed_or_unknown_order_ids_are_404(server: Server) -> None:
    with server.client(someone()) as c:
        for path in [
            "/v1/orders/nope",
            "/v1/orders/" + str(uuid.uuid4()),
            "/v1/orders/%00",
            "/v1/orders/" + "a" * 300,
        ]:
            assert_problem(c.get(path), 404, "not-found")


def test_replay_returns_the_same_bytes_and_creates_nothing(server: Server) -> None:
    sku = new_sku(server)
    with server.client(someone()) as c:
        body = order_body((sku, 3))
        first = post(c, body, key="replay-me")
        second = post(c, body, key='"replay-me"')  # the quoted structured-field form
        third = post(c, body, key="replay-me")
        listing = c.get("/v1/orders").json()
    assert first.status_code == second.status_code == third.status_code == 201
    assert second.content == first.content == third.content
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert [o["id"] for o in listing["items"]] == [first.json()["id"]]


def test_same_key_different_body_is_422(server: Server) -> None:
    sku = new_sku(server)
    with server.client(someone()) as c:
        assert post(c, order_body((sku, 1)), key="k1").status_code == 201
        doc = assert_problem(post(c, order_body((sku, 2)), key="k1"), 422, "idempotency-key-reused")
    assert "different request body" in str(doc["detail"])


def test_keys_are_scoped_per_customer(server: Server) -> None:
    sku = new_sku(server)
    with server.client(someone()) as a, server.client(someone()) as b:
        ra = post(a, order_body((sku, 1)), key="shared")
        rb = post(b, order_body((sku, 1)), key="shared")
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]


def test_idempotency_key_required_and_checked(server: Server) -> None:
    sku = new_sku(server)
    with server.client(someone()) as c:
        assert_problem(post(c, order_body((sku, 1)), key=None), 400, "idempotency-key-missing")
        for bad in ["", "a" * 256, "has space", "caf\u00e9"]:
            r = c.post(
                "/v1/orders",
                content=orjson.dumps(order_body((sku, 1))),
                headers={"content-type": b"application/json", "idempotency-key": bad.encode()},
            )
            assert_problem(r, 400, "idempotency-key-invalid")


def test_field_errors_carry_pointers(server: Server) -> None:
    sku = new_sku(server)
    with server.client(someone()) as c:
        doc = assert_problem(
            post(c, {"currency": "usd", "items": [{"sku": "NO-SUCH", "quantity": 0}, {"sku": sku}]}),
            422,
            "validation-error",
        )
        pointers = {(e["pointer"], e["code"]) for e in doc["errors"]}  # type: ignore[attr-defined]
        assert pointers == {
            ("/currency", "invalid_currency"),
            ("/items/0/quantity", "out_of_range"),
            ("/items/1/quantity", "required"),
        }
        doc = assert_problem(post(c, order_body(("NO-SUCH-SKU", 1))), 422, "validation-error")
        assert doc["errors"] == [{"pointer": "/items/0/sku", "code": "unknown_sku", "detail": "no such product"}]
        doc = assert_problem(post(c, order_body((sku, 1), currency="EUR")), 422, "validation-error")
        assert doc["errors"][0]["code"] == "currency_mismatch"  # type: ignore[index]


def test_malformed_json_is_400_and_wrong_types_are_4xx(server: Server) -> None:
    with server.client(someone()) as c:
        for raw in [b"{", b"\xff", b"", b'{"currency": NaN}']:
            r = c.post(
                "/v1/orders",
                content=raw,
                headers={"content-type": "application/json", "idempotency-key": uuid.uuid4().hex},
            )
            assert_problem(r, 400, "malformed-json")
        r = c.post(
            "/v1/orders",
            content=b"{}",
            headers={"content-type": "text/plain", "idempotency-key": "x"},
        )
        assert_problem(r, 415, "unsupported-media-type")
        r = c.post(
            "/v1/orders",
            content=b"[" + b" " * 70_000 + b"]",
            headers={"content-type": "application/json", "idempotency-key": "big"},
        )
        assert_problem(r, 413, "payload-too-large")


def test_price_changed_is_409(server: Server) -> None:
    sku = new_sku(server, price="5.00")
    with server.client(someone()) as c:
        doc = assert_problem(post(c, order_body((sku, 2), expected_total="9.99")), 409, "price-changed")
    assert (doc["expected_total"], doc["current_total"], doc["currency"]) == (
        "9.99",
        "10.00",
        "USD",
    )


def test_out_of_stock_is_409_and_reserves_nothing(server: Server) -> None:
    small, big = new_sku(server, stock=2), new_sku(server, stock=50)
    with server.client(someone()) as c:
        doc = assert_problem(post(c, order_body((big, 5), (small, 3))), 409, "out-of-stock")
        assert doc["sku"] == small
        assert c.get(f"/v1/products/{big}").json()["stock"] == 50
        assert c.get(f"/v1/products/{small}").json()["stock"] == 2
        assert c.get("/v1/orders").json() == {"items": [], "next_cursor": None}


def test_jpy_has_no_minor_unit(server: Server) -> None:
    sku = new_sku(server, price="2800", currency="JPY")
    with server.client(someone()) as c:
        r = post(c, order_body((sku, 3), currency="JPY", expected_total="8400"))
        assert r.status_code == 201, r.text
        assert r.json()["total"] == "8400"
        assert_problem(
            post(c, order_body((sku, 1), currency="JPY", expected_total="2800.5")),
            422,
            "validation-error",
        )


def test_list_orders_pages_newest_first(server: Server) -> None:
    sku = new_sku(server)
    with server.client(someone()) as c:
        ids = [post(c, order_body((sku, 1))).json()["id"] for _ in range(5)]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = c.get("/v1/orders", params=params)
            assert page.status_code == 200
            doc = page.json()
            seen += [o["id"] for o in doc["items"]]
            pages += 1
            cursor = doc["next_cursor"]
            if cursor is None:
                break
    assert seen == ids[::-1]
    assert pages == 3


def test_list_rejects_bad_cursor_and_limit(server: Server) -> None:
    with server.client(someone()) as c:
        for params in [{"cursor": "!!!"}, {"cursor": "bm90LWEtdXVpZA"}, {"cursor": ""}]:
            assert_problem(c.get("/v1/orders", params=params), 400, "invalid-cursor")
        for limit in ["0", "101", "-1", "ten", "1.5"]:
            assert_problem(c.get("/v1/orders", params={"limit": limit}), 400, "invalid-limit")
