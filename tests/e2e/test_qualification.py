"""Order qualification through a real server on both stores: an administrator restricts one
customer (blocked, the largest order value, the most unpaid orders at once); refusals are problems
with stable codes and touch no stock; the cap on unpaid orders holds under a concurrent burst.

A change binds orders at once, whichever of the two workers prices them (the order's transaction
refuses a snapshot older than the customer's restrictions, and a refusal by an old snapshot catches
up first), so the orders here follow the change without waiting. Quotes read only the snapshot:
every worker's reflects the change within a refresh interval, which the tests wait for."""

from __future__ import annotations

import uuid

import orjson

from tests.e2e.conftest import Server, order_body
from tests.e2e.test_concurrency import BURST, burst
from tests.e2e.test_flags import until
from tests.e2e.test_orders import assert_problem, new_sku


def restrict(server: Server, customer: str, body: object) -> dict[str, object]:
    with server.client("qual-admin", "admin") as admin:
        r = admin.put(f"/v1/customers/{customer}/restrictions", json=body)
        assert r.status_code in (200, 201), r.text
        doc: dict[str, object] = r.json()
        assert admin.get(f"/v1/customers/{customer}/restrictions").json() == doc
    return doc


def order(server: Server, customer: str, sku: str, quantity: int = 1):  # type: ignore[no-untyped-def]
    with server.client(customer) as c:
        return c.post("/v1/orders", json=order_body((sku, quantity)), headers={"idempotency-key": uuid.uuid4().hex})


def quoted(server: Server, customer: str, sku: str, quantity: int = 1) -> set[int]:
    """Statuses of quotes for ``customer``, each on a new connection (so that every worker likely answers):
    a quote applies the customer's restrictions as their order would, and commits to nothing."""
    statuses = set()
    for _ in range(4):
        with server.client(customer) as c:
            statuses.add(c.post("/v1/quotes", json=order_body((sku, quantity))).status_code)
    return statuses


def stock(server: Server, sku: str) -> int:
    with server.client("qual-admin", "admin") as admin:
        value: int = admin.get(f"/v1/products/{sku}").json()["stock"]
    return value


def test_a_blocked_customer_is_refused_until_lifted_and_nobody_else_is(server: Server) -> None:
    sku = new_sku(server, stock=10)
    customer = f"blocked-{uuid.uuid4().hex[:8]}"
    doc = restrict(server, customer, {"blocked": True})
    assert doc["blocked"] is True and doc["max_open_orders"] is None and doc["max_order_value"] == {}
    for _ in range(4):  # each on a new connection: likely both workers, at once
        assert_problem(order(server, customer, sku), 403, "customer-blocked")
    assert stock(server, sku) == 10, "refused before stock is touched"
    assert order(server, f"other-{uuid.uuid4().hex[:6]}", sku).status_code == 201
    until(lambda: quoted(server, customer, sku) == {403}, "every worker's quotes refuse the customer")
    restrict(server, customer, {})
    assert order(server, customer, sku).status_code == 201, "{} lifts every restriction, at once"
    until(lambda: quoted(server, customer, sku) == {200}, "every worker's quotes follow")


def test_the_largest_order_value_is_per_currency(server: Server) -> None:
    sku = new_sku(server, price="10.00", stock=10)
    customer = f"valued-{uuid.uuid4().hex[:8]}"
    doc = restrict(server, customer, {"max_order_value": {"USD": "25.00", "EUR": "1.00"}})
    assert doc["max_order_value"] == {"EUR": "1.00", "USD": "25.00"}
    refused = order(server, customer, sku, quantity=3)
    problem = assert_problem(refused, 422, "validation-error")
    assert problem["errors"][0]["pointer"] == "/items" and problem["errors"][0]["code"] == "order_value_limit"  # type: ignore[index]
    assert "25.00 USD" in problem["errors"][0]["detail"]  # type: ignore[index]
    assert stock(server, sku) == 10
    assert order(server, customer, sku, quantity=2).status_code == 201
    until(lambda: quoted(server, customer, sku, 3) == {422}, "every worker's quotes apply the limit")
    assert quoted(server, customer, sku, 2) == {200}


def test_the_cap_on_unpaid_orders_holds_under_a_burst(server: Server) -> None:
    cap = 3
    sku = new_sku(server, stock=1000)
    customer = f"capped-{uuid.uuid4().hex[:8]}"
    restrict(server, customer, {"max_open_orders": cap})
    body = orjson.dumps(order_body((sku, 1)))
    responses = burst(server, [(customer, uuid.uuid4().hex, body) for _ in range(BURST)])
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * cap + [422] * (BURST - cap), codes
    for r in responses:
        if r.status_code == 422:
            assert r.json()["errors"][0]["code"] == "open_orders_limit", r.text
    assert stock(server, sku) == 1000 - cap, "a refused order reserves nothing"
    with server.client(customer) as c:
        mine = c.get("/v1/orders").json()["items"]
        assert len(mine) == cap
        # Paying or cancelling one makes room for exactly one more.
        assert c.post(f"/v1/orders/{mine[0]['id']}/cancel").status_code == 200
    assert order(server, customer, sku).status_code == 201
    assert_problem(order(server, customer, sku), 422, "validation-error")


def test_bad_restrictions_are_refused_saying_why(server: Server) -> None:
    customer = f"bad-{uuid.uuid4().hex[:8]}"
    with server.client("qual-admin", "admin") as admin:
        r = admin.put(
            f"/v1/customers/{customer}/restrictions",
            json={"blocked": "yes", "max_open_orders": 0, "max_order_value": {"XXX": "1", "USD": 5}, "vip": True},
        )
        problem = assert_problem(r, 422, "validation-error")
        got = {(e["pointer"], e["code"]) for e in problem["errors"]}  # type: ignore[attr-defined]
        assert got == {
            ("/blocked", "type"),
            ("/max_open_orders", "out_of_range"),
            ("/max_order_value/XXX", "invalid_currency"),
            ("/max_order_value/USD", "type"),
            ("/vip", "unknown_field"),
        }, got
        assert_problem(admin.get(f"/v1/customers/{customer}/restrictions"), 404, "not-found")
    with server.client("plain-user") as c:
        assert_problem(c.put(f"/v1/customers/{customer}/restrictions", json={}), 403, "forbidden")


def test_a_sku_limit_holds_for_every_customer_and_every_line_naming_the_sku(server: Server) -> None:
    sku = f"LIM-{uuid.uuid4().hex[:8]}"
    with server.client("qual-admin", "admin") as admin:
        put = admin.put(
            f"/v1/products/{sku}",
            json={"name": "Limited", "price": "5.00", "currency": "USD", "stock": 50, "max_per_order": 2},
        )
        assert put.status_code == 201 and put.json()["max_per_order"] == 2, put.text
        bad = admin.put(
            f"/v1/products/{sku}-X", json={"name": "x", "price": "1", "currency": "USD", "stock": 1, "max_per_order": 0}
        )
        assert assert_problem(bad, 422, "validation-error")["errors"][0]["pointer"] == "/max_per_order"  # type: ignore[index]
    buyer = f"limited-{uuid.uuid4().hex[:6]}"
    until(lambda: quoted(server, buyer, sku, 3) == {422}, "every worker knows the limit")
    refused = order(server, buyer, sku, quantity=3)
    problem = assert_problem(refused, 422, "validation-error")
    assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [("/items/0/quantity", "quantity_limit")]  # type: ignore[attr-defined]
    assert stock(server, sku) == 50
    assert order(server, buyer, sku, quantity=2).status_code == 201


def test_a_limit_set_on_a_product_every_worker_knows_binds_at_once(server: Server) -> None:
    """The SKU is in both workers' snapshots without a limit; the limit set through one binds the
    next orders on both (the other worker's transaction finds the product newer than its snapshot)."""
    sku = new_sku(server, price="5.00", stock=50)
    buyer = f"limited-{uuid.uuid4().hex[:6]}"
    until(lambda: quoted(server, buyer, sku, 3) == {200}, "every worker has the product")
    with server.client("qual-admin", "admin") as admin:
        put = admin.put(
            f"/v1/products/{sku}",
            json={"name": "Limited", "price": "5.00", "currency": "USD", "stock": 50, "max_per_order": 2},
        )
        assert put.status_code == 200, put.text
    for _ in range(4):  # each on a new connection: likely both workers, at once
        problem = assert_problem(order(server, buyer, sku, quantity=3), 422, "validation-error")
        assert [e["code"] for e in problem["errors"]] == ["quantity_limit"]  # type: ignore[attr-defined]
    assert stock(server, sku) == 50
