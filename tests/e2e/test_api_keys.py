"""API keys: created by an admin, shown once, stored hashed, found by prefix, revocable."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Server
from tests.e2e.test_orders import assert_problem


def with_key(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"x-api-key": key}, timeout=30)


def test_service_key_reads_the_feed_until_revoked(server: Server) -> None:
    with server.client("ops", "admin") as admin:
        created = admin.post("/v1/api-keys", json={"name": "warehouse", "roles": ["service"]})
        assert created.status_code == 201, created.text
        doc = created.json()
        key, prefix = doc["key"], doc["prefix"]
        assert key.startswith(f"of_{prefix}_") and doc["roles"] == ["service"]
        listed = admin.get("/v1/api-keys").json()["items"]
        mine = [k for k in listed if k["prefix"] == prefix]
        assert mine and "key" not in mine[0], "a key is shown once, never listed"
    with with_key(server, key) as svc:
        assert svc.get("/v1/events").status_code == 200
        assert_problem(svc.post("/v1/api-keys", json={"name": "x", "roles": ["admin"]}), 403, "forbidden")
    with with_key(server, key[:-1] + ("A" if key[-1] != "A" else "B")) as wrong:
        assert_problem(wrong.get("/v1/events"), 401, "unauthorized")
    with with_key(server, "not-a-key") as garbage:
        assert_problem(garbage.get("/v1/events"), 401, "unauthorized")
    with server.client("ops", "admin") as admin:
        assert admin.delete(f"/v1/api-keys/{prefix}").status_code == 204
        assert_problem(admin.delete(f"/v1/api-keys/{prefix}"), 404, "not-found")
        bad = admin.post("/v1/api-keys", json={"name": "x", "roles": ["customer"]})
        assert_problem(bad, 422, "validation-error")
    with server.client("customer") as c:
        assert_problem(c.get("/v1/api-keys"), 403, "forbidden")
