"""An order's life through the real server: cancel, pay by webhook, refund, events — both stores."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson

from tests.e2e.conftest import Server, order_body, payment, webhook
from tests.e2e.test_orders import assert_problem, new_sku, post


def create(server: Server, customer: str, sku: str, qty: int = 2) -> dict[str, Any]:
    with server.client(customer) as c:
        r = post(c, order_body((sku, qty)))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def stock(server: Server, sku: str) -> int:
    with server.client("auditor") as c:
        return int(c.get(f"/v1/products/{sku}").json()["stock"])


def test_owner_cancels_and_stock_comes_back(server: Server) -> None:
    sku = new_sku(server, price="2.00", stock=10)
    customer = f"c-{uuid.uuid4().hex[:8]}"
    order = create(server, customer, sku, 3)
    assert stock(server, sku) == 7
    with server.client(customer) as c:
        r = c.post(f"/v1/orders/{order['id']}/cancel")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["cancel_reason"]) == ("CANCELED", "customer")
        again = assert_problem(c.post(f"/v1/orders/{order['id']}/cancel"), 409, "invalid-state")
        assert again["order_status"] == "CANCELED" and "CANCELED" in str(again["detail"])
    assert stock(server, sku) == 10


def test_strangers_cannot_cancel_and_admins_cancel_as_admin(server: Server) -> None:
    sku = new_sku(server)
    order = create(server, "owner-x", sku)
    with server.client("stranger") as c:
        assert_problem(c.post(f"/v1/orders/{order['id']}/cancel"), 404, "not-found")
        assert_problem(c.post("/v1/orders/not-an-id/cancel"), 404, "not-found")
    with server.client("ops", "admin") as admin:
        r = admin.post(f"/v1/orders/{order['id']}/cancel")
    assert r.json()["cancel_reason"] == "admin"


def test_payment_webhook_pays_once(server: Server) -> None:
    sku = new_sku(server, price="5.00", stock=5)
    order = create(server, "payer", sku, 2)
    event = payment(order)
    first = webhook(server, event)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "PAID"
    again = webhook(server, event)  # the provider redelivers
    assert again.status_code == 200 and again.json() == first.json()
    assert stock(server, sku) == 3, "paid stock stays sold"
    late = webhook(server, payment(order, "failed"))
    assert_problem(late, 409, "invalid-state")
    with server.client("payer") as c:
        assert c.get(f"/v1/orders/{order['id']}").json()["status"] == "PAID"


def test_failed_payment_cancels_and_releases_stock(server: Server) -> None:
    sku = new_sku(server, stock=4)
    order = create(server, "failer", sku, 4)
    r = webhook(server, payment(order, "failed"))
    assert (r.status_code, r.json()["status"], r.json()["cancel_reason"]) == (200, "CANCELED", "payment_failed")
    assert stock(server, sku) == 4


def test_amount_mismatch_is_422_and_not_paid(server: Server) -> None:
    sku = new_sku(server, price="5.00")
    order = create(server, "mismatch", sku, 1)
    event = payment(order, amount="4.99")
    doc = assert_problem(webhook(server, event), 422, "payment-mismatch")
    assert doc["order_id"] == order["id"]
    assert_problem(webhook(server, event), 422, "payment-mismatch")  # the same answer on redelivery
    assert_problem(webhook(server, payment(order, currency="EUR")), 422, "payment-mismatch")
    with server.client("mismatch") as c:
        assert c.get(f"/v1/orders/{order['id']}").json()["status"] == "PENDING_PAYMENT"


def test_bad_signatures_are_401(server: Server) -> None:
    sku = new_sku(server)
    order = create(server, "sig", sku, 1)
    event = payment(order)
    # Skews well past the tolerance: the client clock is truncated to whole seconds and the request takes time,
    # so the exact boundary is tested in tests/unit/test_payments.py against an injected clock.
    for kwargs in [{"secret": "wrong-secret"}, {"skew": -600}, {"skew": 600}, {"header": "t=1,v1=00"}, {"header": ""}]:
        assert_problem(webhook(server, event, **kwargs), 401, "invalid-signature")
    with httpx.Client(base_url=server.base_url) as c:
        r = c.post("/v1/payments/webhook", content=orjson.dumps(event), headers={"content-type": "application/json"})
    assert_problem(r, 401, "invalid-signature")
    bad = webhook(server, {"event_id": "x", "order_id": "nope", "status": "maybe", "amount": 5, "currency": "usd"})
    assert {e["pointer"] for e in assert_problem(bad, 422, "validation-error")["errors"]} == {  # type: ignore[union-attr]
        "/order_id",
        "/status",
        "/amount",
        "/currency",
    }


def test_refunds_partial_then_full(server: Server) -> None:
    sku = new_sku(server, price="10.00")
    order = create(server, "refundee", sku, 1)
    assert webhook(server, payment(order)).status_code == 200
    with server.client("ops", "admin") as admin, server.client("refundee") as owner:
        assert_problem(owner.post(f"/v1/orders/{order['id']}/refunds", json={}), 403, "forbidden")
        part = admin.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "3.50"})
        assert (part.status_code, part.json()["status"], part.json()["refunded"]) == (200, "PARTIALLY_REFUNDED", "3.50")
        too_much = admin.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "6.51"})
        assert assert_problem(too_much, 422, "validation-error")["errors"][0]["code"] == "refund_too_large"  # type: ignore[index]
        zero = admin.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "0.00"})
        assert assert_problem(zero, 422, "validation-error")["errors"][0]["code"] == "out_of_range"  # type: ignore[index]
        rest = admin.post(f"/v1/orders/{order['id']}/refunds", json={})
        assert (rest.json()["status"], rest.json()["refunded"]) == ("REFUNDED", "10.00")
        assert_problem(admin.post(f"/v1/orders/{order['id']}/refunds", json={}), 409, "invalid-state")
        pending = create(server, "refundee", sku, 1)
        assert_problem(admin.post(f"/v1/orders/{pending['id']}/refunds", json={}), 409, "invalid-state")


def test_event_feed_lists_every_transition_in_order(server: Server) -> None:
    sku = new_sku(server, price="1.00")
    order = create(server, "feed", sku, 1)
    webhook(server, payment(order))
    with server.client("ops", "admin") as admin:
        admin.post(f"/v1/orders/{order['id']}/refunds", json={"amount": "0.40"})
        admin.post(f"/v1/orders/{order['id']}/refunds", json={})
    seen: list[dict[str, Any]] = []
    with server.client("consumer", "service") as svc:
        cursor = "0"
        # The feed holds back while any write transaction that began earlier is still in flight
        # (anywhere on the database server): poll, bounded, until this order's four events are in.
        deadline = time.monotonic() + 10
        while sum(e["aggregate_id"] == order["id"] for e in seen) < 4 and time.monotonic() < deadline:
            page = svc.get("/v1/events", params={"after": cursor, "limit": "50"}).json()
            seen += page["items"]
            cursor = page["next_cursor"]
        assert_problem(svc.get("/v1/events", params={"after": "x"}), 400, "invalid-cursor")
        assert_problem(svc.get("/v1/events", params={"limit": "0"}), 400, "invalid-limit")
    with server.client("customer") as c:
        assert_problem(c.get("/v1/events"), 403, "forbidden")
    mine = [e for e in seen if e["aggregate_id"] == order["id"]]
    assert [(e["type"], e["sequence"]) for e in mine] == [
        ("order.created", 1),
        ("order.paid", 2),
        ("order.refunded", 3),
        ("order.refunded", 4),
    ]
    assert mine[-1]["data"]["status"] == "REFUNDED" and mine[-1]["data"]["change"]["amount"] == 60
    assert all(set(e) == {"id", "type", "aggregate_id", "sequence", "occurred_at", "version", "data"} for e in mine)
    assert len({e["id"] for e in seen}) == len(seen), "no event twice in one pass"
