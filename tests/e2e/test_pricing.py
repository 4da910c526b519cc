"""Coupons, automatic promotions, tax and quotes through a real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest

from tests.e2e.conftest import Server, order_body, running
from tests.e2e.test_concurrency import burst
from tests.e2e.test_orders import assert_problem, new_sku, post


def code() -> str:
    return f"C{uuid.uuid4().hex[:10].upper()}"


def put_coupon(server: Server, coupon: str, **fields: object) -> dict[str, object]:
    with server.client("admin-1", "admin") as admin:
        r = admin.put(f"/v1/coupons/{coupon}", json={"currency": "USD", **fields})
    assert r.status_code in (200, 201), r.text
    return r.json()  # type: ignore[no-any-return]


def test_coupon_admin_api(server: Server) -> None:
    c = code()
    doc = put_coupon(
        server,
        c.lower(),
        percent_off="12.5",
        min_subtotal="10",
        skus=["A-1"],
        expires_at="2030-01-01T00:00:00Z",
        max_redemptions=3,
    )
    assert doc == {
        "code": c,
        "currency": "USD",
        "percent_off": "12.5",
        "amount_off": None,
        "min_subtotal": "10.00",
        "skus": ["A-1"],
        "expires_at": "2030-01-01T00:00:00.000Z",
        "max_redemptions": 3,
        "redemptions": 0,
        "updated_at": doc["updated_at"],
    }
    with server.client("admin-1", "admin") as admin:
        assert admin.get(f"/v1/coupons/{c}").json() == doc
        assert_problem(admin.get("/v1/coupons/NOPE-404"), 404, "not-found")
        r = admin.put(
            f"/v1/coupons/{code()}",
            json={
                "currency": "usd",
                "percent_off": "150",
                "amount_off": "1",
                "expires_at": "tomorrow",
                "max_redemptions": 0,
                "extra": 1,
            },
        )
        errors = {(e["pointer"], e["code"]) for e in assert_problem(r, 422, "validation-error")["errors"]}  # type: ignore[union-attr]
        assert errors == {
            ("/currency", "invalid_currency"),
            ("/percent_off", "invalid_percent"),
            ("", "one_of"),
            ("/expires_at", "invalid_timestamp"),
            ("/max_redemptions", "out_of_range"),
            ("/extra", "unknown_field"),
        }
    with server.client("customer") as customer:
        assert_problem(customer.get(f"/v1/coupons/{c}"), 403, "forbidden")
        assert_problem(customer.put(f"/v1/coupons/{c}", json={}), 403, "forbidden")


def test_order_with_an_amount_coupon_allocates_the_discount(server: Server) -> None:
    skus = [new_sku(server, price="1.00") for _ in range(3)]
    c = code()
    put_coupon(server, c, amount_off="1.00")
    with server.client(f"buyer-{c}") as buyer:
        r = post(buyer, order_body(*((s, 1) for s in skus), coupon=c.lower(), expected_total="2.00"))
    assert r.status_code == 201, r.text
    doc = r.json()
    assert [line["discount"] for line in doc["lines"]] == ["0.34", "0.33", "0.33"]
    assert [line["total"] for line in doc["lines"]] == ["0.66", "0.67", "0.67"]
    assert (doc["subtotal"], doc["discount"], doc["total"], doc["coupon"]) == ("3.00", "1.00", "2.00", c)


def test_coupon_refusals_point_at_the_coupon(server: Server) -> None:
    sku = new_sku(server, price="5.00")
    expired, small = code(), code()
    put_coupon(server, expired, percent_off="10", expires_at="2020-01-01T00:00:00Z")
    put_coupon(server, small, percent_off="10", min_subtotal="100")
    with server.client("coupon-user") as c:
        for coupon, why in [("NO-SUCH", "unknown_coupon"), (expired, "coupon_expired"), (small, "coupon_min_subtotal")]:
            doc = assert_problem(post(c, order_body((sku, 1), coupon=coupon)), 422, "validation-error")
            assert doc["errors"] == [{"pointer": "/coupon", "code": why, "detail": doc["errors"][0]["detail"]}]  # type: ignore[index]


def test_coupon_redemption_limit_holds_across_workers(server: Server) -> None:
    sku = new_sku(server, stock=100)
    c = code()
    put_coupon(server, c, amount_off="0.50", max_redemptions=3)
    body = orjson.dumps(order_body((sku, 1), coupon=c))
    responses = burst(server, [(f"lim-{i}-{c}", uuid.uuid4().hex, body) for i in range(10)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [422] * 7, codes
    refusals = {r.json()["errors"][0]["code"] for r in responses if r.status_code == 422}
    assert refusals <= {"coupon_exhausted"}
    with server.client("admin-1", "admin") as admin:
        assert admin.get(f"/v1/coupons/{c}").json()["redemptions"] == 3
        assert admin.get(f"/v1/products/{sku}").json()["stock"] == 97


def test_automatic_promotion_applies_from_its_minimum_quantity(server: Server) -> None:
    sku = new_sku(server, price="10.00")
    with server.client("admin-1", "admin") as admin:
        r = admin.put(f"/v1/promotions/P-{sku}", json={"skus": [sku], "percent_off": "25", "min_quantity": 2})
        assert r.status_code == 201, r.text
        assert admin.get(f"/v1/promotions/P-{sku}").json()["percent_off"] == "25"
    with server.client("promo-buyer") as c:
        one = post(c, order_body((sku, 1), expected_total="10.00"))
        two = post(c, order_body((sku, 2), expected_total="15.00"))
    assert one.status_code == two.status_code == 201, (one.text, two.text)
    assert two.json()["lines"][0]["discount"] == "5.00"


def test_quote_prices_without_persisting(server: Server) -> None:
    sku = new_sku(server, price="3.33", stock=7)
    c = code()
    put_coupon(server, c, percent_off="10")
    with server.client("quoter") as q:
        r = q.post("/v1/quotes", json=order_body((sku, 3), coupon=c))
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["subtotal"], doc["discount"], doc["total"], doc["coupon"]) == ("9.99", "1.00", "8.99", c)
        assert "id" not in doc
        assert q.get(f"/v1/products/{sku}").json()["stock"] == 7
        assert q.get("/v1/orders").json()["items"] == []
        order = post(q, order_body((sku, 3), coupon=c))
        assert {k: order.json()[k] for k in doc} == doc, "an order gets exactly the quoted amounts"
        assert_problem(q.post("/v1/quotes", json=order_body((sku, 1), expected_total="1.00")), 409, "price-changed")
        assert_problem(q.post("/v1/quotes", json={"currency": "USD"}), 422, "validation-error")
        assert_problem(
            q.post("/v1/quotes", content=b"{", headers={"content-type": "application/json"}), 400, "malformed-json"
        )


@pytest.fixture(scope="module")
def taxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory, {"ORDERFAST_TAX_RATES": "standard=20,reduced=5.5"}) as srv:
        yield srv


def test_exclusive_tax_per_line(taxed: Server) -> None:
    with taxed.client("admin-1", "admin") as admin:
        for sku, price, tax_class in [
            ("TX-S", "10.00", "standard"),
            ("TX-R", "9.99", "reduced"),
            ("TX-0", "1.00", None),
        ]:
            r = admin.put(
                f"/v1/products/{sku}",
                json={"name": sku, "price": price, "currency": "USD", "stock": 10, "tax_class": tax_class},
            )
            assert r.status_code in (200, 201), r.text
        bad = admin.put(
            "/v1/products/TX-X", json={"name": "x", "price": "1", "currency": "USD", "stock": 1, "tax_class": "luxury"}
        )
        assert assert_problem(bad, 422, "validation-error")["errors"][0]["code"] == "unknown_tax_class"  # type: ignore[index]
    with taxed.client("tax-payer") as c:
        r = post(c, order_body(("TX-S", 1), ("TX-R", 1), ("TX-0", 1), expected_total="23.54"))
    assert r.status_code == 201, r.text
    doc = r.json()
    assert [(line["tax_rate"], line["tax"], line["total"]) for line in doc["lines"]] == [
        ("20", "2.00", "12.00"),
        ("5.5", "0.55", "10.54"),
        ("0", "0.00", "1.00"),
    ]
    assert (doc["subtotal"], doc["tax"], doc["total"], doc["prices_include_tax"]) == ("20.99", "2.55", "23.54", False)
