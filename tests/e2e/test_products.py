"""The catalog API, and prices reaching every worker's snapshot."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from orderfast.http.paging import encode_cursor
from tests.e2e.conftest import Server, order_body
from tests.e2e.test_orders import assert_problem, post


def test_admin_creates_then_replaces_a_product(server: Server) -> None:
    sku = f"P-{uuid.uuid4().hex[:8]}"
    with server.client("admin-1", "admin") as admin:
        created = admin.put(
            f"/v1/products/{sku}",
            json={"name": "Kettle", "price": "35.5", "currency": "EUR", "stock": 4},
        )
        assert created.status_code == 201
        assert created.headers["location"] == f"/v1/products/{sku}"
        doc = created.json()
        assert (doc["sku"], doc["name"], doc["price"], doc["currency"], doc["stock"]) == (
            sku,
            "Kettle",
            "35.50",
            "EUR",
            4,
        )
        replaced = admin.put(
            f"/v1/products/{sku}",
            json={"name": "Kettle 2", "price": "36", "currency": "EUR", "stock": 9},
        )
        assert replaced.status_code == 200
    with server.client("reader") as c:
        got = c.get(f"/v1/products/{sku}").json()
    assert (got["name"], got["price"], got["stock"]) == ("Kettle 2", "36.00", 9)


def test_only_admins_change_the_catalog(server: Server) -> None:
    with server.client("customer-1") as c:
        r = c.put("/v1/products/X-1", json={"name": "x", "price": "1", "currency": "USD", "stock": 1})
        assert_problem(r, 403, "forbidden")
        assert_problem(c.get("/v1/products/X-1"), 404, "not-found")


def test_product_validation_lists_every_error(server: Server) -> None:
    with server.client("admin-1", "admin") as admin:
        r = admin.put(
            "/v1/products/BAD-1",
            json={"name": "", "price": 1.5, "currency": "usd", "stock": -1, "colour": "red"},
        )
        doc = assert_problem(r, 422, "validation-error")
        assert {e["pointer"] for e in doc["errors"]} == {  # type: ignore[attr-defined]
            "/name",
            "/price",
            "/currency",
            "/stock",
            "/colour",
        }
        r = admin.put(
            "/v1/products/BAD-1",
            json={"name": "x", "price": "1.001", "currency": "USD", "stock": 1},
        )
        assert assert_problem(r, 422, "validation-error")["errors"][0]["pointer"] == "/price"  # type: ignore[index]
        # A null where a value is required is the same 422 as a missing one (schemathesis found a 500 here).
        for price in ({"price": None}, {}):
            r = admin.put("/v1/products/BAD-1", json={"name": "x", "currency": "USD", "stock": 1, **price})
            error = assert_problem(r, 422, "validation-error")["errors"][0]  # type: ignore[index]
            assert (error["pointer"], error["code"]) == ("/price", "required")
        # Integers are written as integers everywhere, as an order's quantity is (2.0 is refused).
        r = admin.put("/v1/products/BAD-1", json={"name": "x", "price": "1", "currency": "USD", "stock": 5.0})
        error = assert_problem(r, 422, "validation-error")["errors"][0]  # type: ignore[index]
        assert (error["pointer"], error["code"]) == ("/stock", "type")
        r = admin.put("/v1/promotions/bad-1", json={"skus": ["BAD-1"], "percent_off": "5", "min_quantity": 3.0})
        error = assert_problem(r, 422, "validation-error")["errors"][0]  # type: ignore[index]
        assert (error["pointer"], error["code"]) == ("/min_quantity", "type")
        r = admin.put("/v1/products/BAD-1", json={"name": "x", "price": "1", "currency": "USD"})
        error = assert_problem(r, 422, "validation-error")["errors"][0]  # type: ignore[index]
        assert (error["pointer"], error["code"]) == ("/stock", "required")
        r = admin.put("/v1/products/BAD-1", content=b"{nope", headers={"content-type": "application/json"})
        assert_problem(r, 400, "malformed-json")
        assert_problem(admin.put("/v1/products/bad%20sku", json={}), 404, "not-found")


def test_every_worker_prices_a_change_at_once(server: Server) -> None:
    """A client that saw the new price can order at it immediately, whichever worker answers."""
    sku = f"P-{uuid.uuid4().hex[:8]}"
    with server.client("admin-1", "admin") as admin, server.client(f"c-{sku}") as c:
        for price in ["1.00", "2.00", "3.00"]:
            r = admin.put(
                f"/v1/products/{sku}",
                json={"name": "Moving", "price": price, "currency": "USD", "stock": 1000},
            )
            assert r.status_code in (200, 201)
            # Enough orders that both workers answer some of them.
            for _ in range(6):
                created = post(c, order_body((sku, 1), expected_total=price))
                assert created.status_code == 201, created.text
                assert created.json()["total"] == price


# The listings. The module's server also holds what the other tests wrote (and the demo catalog), so
# these check every item the listing has, and the order of their own rows: keys that differ in
# zero-padded digits only, in the same order under any database collation.

LISTINGS = {
    # path: (the item's key, a few PUT bodies, the key's own character rule broken by a cursor)
    "/v1/products": ("sku", {"name": "Listed", "price": "2.50", "currency": "USD", "stock": 5}, "bad sku"),
    "/v1/coupons": ("code", {"currency": "USD", "percent_off": "10"}, "DOT.TED"),
    "/v1/promotions": ("id", {"skus": ["SKU-1"], "percent_off": "5"}, "dot.ted"),
}


def page_through(c: httpx.Client, path: str, limit: int) -> list[dict[str, Any]]:
    """Every item, following next_cursor unchanged; every page but the last is full."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        r = c.get(path, params={"limit": str(limit), **({"cursor": cursor} if cursor is not None else {})})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        doc = r.json()
        assert set(doc) == {"items", "next_cursor"}
        items += doc["items"]
        cursor = doc["next_cursor"]
        if cursor is None:
            return items
        assert len(doc["items"]) == limit
    raise AssertionError("the listing never ended")


@pytest.mark.parametrize("path", list(LISTINGS))
def test_an_admin_pages_through_a_whole_listing(server: Server, path: str) -> None:
    key, body, _ = LISTINGS[path]
    run = uuid.uuid4().hex[:8].upper()
    mine = [f"L{run}-{i:02d}" for i in range(5)]
    with server.client("admin-1", "admin") as admin:
        for k in reversed(mine):  # written out of key order
            # Coupon codes are case-insensitive, stored upper-cased: written lower-case here.
            r = admin.put(f"{path}/{k.lower() if key == 'code' else k}", json=body)
            assert r.status_code == 201, r.text
        items = page_through(admin, path, 2)
        keys = [item[key] for item in items]
        assert len(set(keys)) == len(keys), "no item twice"
        assert [k for k in keys if k.startswith(f"L{run}-")] == mine
        # Each item is the document the single GET answers.
        for item in items:
            assert admin.get(f"{path}/{item[key]}").json() == item
        # The page that holds the last item says there is no next one, even when it is full...
        n = len(items)
        assert n <= 100
        assert admin.get(path, params={"limit": str(n)}).json() == {"items": items, "next_cursor": None}
        # ...and the page one short of it points at the last item alone.
        short = admin.get(path, params={"limit": str(n - 1)}).json()
        assert short["items"] == items[:-1] and short["next_cursor"] is not None
        last = admin.get(path, params={"limit": str(n - 1), "cursor": short["next_cursor"]}).json()
        assert last == {"items": items[-1:], "next_cursor": None}
        # No limit: the first 20.
        first = admin.get(path).json()
        assert first["items"] == items[:20] and (first["next_cursor"] is None) == (n <= 20)


def test_products_list_with_their_current_stock_for_any_user(server: Server) -> None:
    sku = f"LS-{uuid.uuid4().hex[:8]}"
    with server.client("admin-1", "admin") as admin:
        r = admin.put(f"/v1/products/{sku}", json={"name": "Stocked", "price": "1.00", "currency": "USD", "stock": 5})
        assert r.status_code == 201, r.text
    with server.client(f"c-{sku}") as c:
        assert post(c, order_body((sku, 2))).status_code == 201
        listed = {p["sku"]: p for p in page_through(c, "/v1/products", 100)}
    assert listed[sku]["stock"] == 3
    assert {"SKU-1", "SKU-2", "SKU-3", "SKU-4", "SKU-JP-1"} <= set(listed)  # the demo catalog


def test_only_admins_list_coupons_and_promotions(server: Server) -> None:
    with server.client("customer-lists") as c:
        for path in ("/v1/coupons", "/v1/promotions"):
            assert_problem(c.get(path), 403, "forbidden")
            # Refused for the role before the paging parameters are looked at.
            assert_problem(c.get(path, params={"limit": "0", "cursor": "!!!"}), 403, "forbidden")
        assert c.get("/v1/products").status_code == 200
    with server.client() as anonymous:
        for path in LISTINGS:
            assert_problem(anonymous.get(path), 401, "unauthorized")


@pytest.mark.parametrize("path", list(LISTINGS))
def test_a_listing_refuses_a_bad_limit_or_cursor(server: Server, path: str) -> None:
    _, _, foreign = LISTINGS[path]
    with server.client("admin-1", "admin") as admin:
        for limit in ["0", "101", "-1", "ten", "1.5", "", "\u0665"]:
            assert_problem(admin.get(path, params={"limit": limit}), 400, "invalid-limit")
        # Not base64url; empty; a key this listing cannot have; not ASCII.
        for cursor in ["!!!", "", encode_cursor(foreign), "w6k"]:
            assert_problem(admin.get(path, params={"cursor": cursor}), 400, "invalid-cursor")


def test_a_new_price_binds_orders_without_an_expected_total_at_once(server: Server) -> None:
    """No expected_total to catch a stale price: the order's transaction refuses a snapshot older than
    the product, and the order is priced again — at the new price, on whichever worker."""
    sku = f"P-{uuid.uuid4().hex[:8]}"
    with server.client("admin-1", "admin") as admin:
        for price in ["1.00", "2.00", "3.00"]:
            r = admin.put(
                f"/v1/products/{sku}", json={"name": "Moving", "price": price, "currency": "USD", "stock": 1000}
            )
            assert r.status_code in (200, 201)
            for _ in range(4):
                with server.client(f"c-{uuid.uuid4().hex[:6]}") as fresh:  # a new connection each
                    created = post(fresh, order_body((sku, 1)))
                assert created.status_code == 201, created.text
                assert created.json()["total"] == price
