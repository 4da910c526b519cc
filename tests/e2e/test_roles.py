"""Every operation's required roles, as the served OpenAPI spec states them, hold against the server.

For each guarded operation and each role — customer (a token with no role), service, admin — a
role the spec does not list is refused with 403 before anything else is looked at (a made-up id
does not turn it into a 404), and a role it lists is never refused for its role.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_orders import assert_problem

PATH_VALUES = {"order_id": str(uuid.UUID(int=7)), "sku": "SKU-NOPE", "code": "NOPE", "promotion_id": "p-nope"}
ROLES = {"customer": (), "service": ("service",), "admin": ("admin",)}


@pytest.fixture(scope="module")
def operations(server: Server) -> list[tuple[str, str, list[str]]]:
    with server.client() as c:
        spec: dict[str, Any] = c.get("/openapi.json").json()
    ops = [
        (method.upper(), path, op["x-required-roles"])
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
        if op["x-required-roles"]
    ]
    assert len(ops) >= 19, "every guarded operation is in the spec"
    # The listings are guarded too: products for anyone with a token, coupons and promotions for admins.
    listings = {(m, p): set(roles) for m, p, roles in ops if p in ("/v1/products", "/v1/coupons", "/v1/promotions")}
    assert listings == {
        ("GET", "/v1/products"): set(ROLES),
        ("GET", "/v1/coupons"): {"admin"},
        ("GET", "/v1/promotions"): {"admin"},
    }
    return ops


@pytest.mark.parametrize("role", list(ROLES))
def test_each_operation_admits_exactly_its_roles(
    server: Server, operations: list[tuple[str, str, list[str]]], role: str
) -> None:
    with server.client(f"roles-{role}", *ROLES[role]) as c:
        for method, template, allowed in operations:
            path = template
            for name, value in {**PATH_VALUES, "prefix": "abcdefgh"}.items():
                path = path.replace("{" + name + "}", value)
            headers = {"idempotency-key": f"roles-{uuid.uuid4().hex}"}
            r = c.request(method, path, json={} if method in ("POST", "PUT") else None, headers=headers)
            if role in allowed:
                assert r.status_code not in (401, 403), (method, template, role, r.text)
                assert r.status_code < 500, (method, template, role, r.text)
            else:
                assert_problem(r, 403, "forbidden")
