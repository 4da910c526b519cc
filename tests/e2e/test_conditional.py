"""Conditional GETs on a real server, both stores: a strong ETag on an order and on a product, 304
for a client whose copy is current, a new tag whenever the representation changes, and no way to
learn of someone else's order by its tag."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.conftest import Server, order_body
from tests.e2e.test_orders import assert_problem


def validated(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "private, no-cache"
    tag = r.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) > 2, tag
    return tag


def not_modified(r: httpx.Response, tag: str) -> None:
    assert r.status_code == 304, r.text
    assert r.content == b""
    assert r.headers["etag"] == tag
    assert r.headers["cache-control"] == "private, no-cache"


def test_an_order_is_revalidated_until_it_changes(server: Server) -> None:
    user = f"etag-{uuid.uuid4().hex[:8]}"
    with server.client(user) as c:
        created = c.post("/v1/orders", json=order_body(("SKU-1", 1)), headers={"idempotency-key": uuid.uuid4().hex})
        assert created.status_code == 201, created.text
        path = f"/v1/orders/{created.json()['id']}"
        first = c.get(path)
        tag = validated(first)
        assert c.get(path).headers["etag"] == tag, "the same representation, the same tag"
        not_modified(c.get(path, headers={"if-none-match": tag}), tag)
        not_modified(c.get(path, headers={"if-none-match": f'"nope", W/{tag}'}), tag)  # weak comparison
        not_modified(c.get(path, headers={"if-none-match": "*"}), tag)
        other = c.get(path, headers={"if-none-match": '"0"'})
        assert validated(other) == tag and other.content == first.content
        assert c.post(f"{path}/cancel").status_code == 200
        changed = c.get(path, headers={"if-none-match": tag})
        new_tag = validated(changed)
        assert new_tag != tag and changed.json()["status"] == "CANCELED"
        not_modified(c.get(path, headers={"if-none-match": new_tag}), new_tag)


def test_someone_elses_order_is_not_found_whatever_the_tag(server: Server) -> None:
    with server.client(f"owner-{uuid.uuid4().hex[:8]}") as owner:
        created = owner.post("/v1/orders", json=order_body(("SKU-1", 1)), headers={"idempotency-key": uuid.uuid4().hex})
        path = f"/v1/orders/{created.json()['id']}"
        tag = validated(owner.get(path))
    with server.client(f"stranger-{uuid.uuid4().hex[:8]}") as stranger:
        assert_problem(stranger.get(path, headers={"if-none-match": tag}), 404, "not-found")
        assert_problem(stranger.get(path, headers={"if-none-match": "*"}), 404, "not-found")


def test_a_product_tag_follows_its_price_and_its_stock(server: Server) -> None:
    sku = f"E-{uuid.uuid4().hex[:8]}"
    path = f"/v1/products/{sku}"
    with server.client(f"admin-{uuid.uuid4().hex[:6]}", "admin") as admin:
        assert admin.put(path, json={"name": "Mug", "price": "5.00", "currency": "USD", "stock": 10}).status_code == 201
    with server.client(f"reader-{uuid.uuid4().hex[:8]}") as c:
        tag = validated(c.get(path))
        not_modified(c.get(path, headers={"if-none-match": tag}), tag)
        # An order takes stock: the document shows the new stock, so the tag changes.
        r = c.post("/v1/orders", json=order_body((sku, 2)), headers={"idempotency-key": uuid.uuid4().hex})
        assert r.status_code == 201, r.text
        after_order = c.get(path, headers={"if-none-match": tag})
        stock_tag = validated(after_order)
        assert stock_tag != tag and after_order.json()["stock"] == 8
        with server.client(f"admin-{uuid.uuid4().hex[:6]}", "admin") as admin:
            put = admin.put(path, json={"name": "Mug", "price": "6.00", "currency": "USD", "stock": 8})
            assert put.status_code == 200
        after_price = c.get(path, headers={"if-none-match": stock_tag})
        assert validated(after_price) not in (tag, stock_tag) and after_price.json()["price"] == "6.00"
        assert_problem(c.get("/v1/products/NO-SUCH-SKU", headers={"if-none-match": "*"}), 404, "not-found")
