"""The shared order cache on a real server: a second read of an order is a cache hit with the same
bytes and tag, a change is seen at once, and someone else's cached order is still a 404."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Server, order_body, running
from tests.e2e.test_orders import assert_problem


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Server]:
    env = {
        "ORDERFAST_REDIS_URL": redis_url,
        "ORDERFAST_READ_CACHE": "true",
        "ORDERFAST_RELAY_IN_PROCESS": "false",
    }
    with running(tmp_path_factory, env, workers=1) as srv:
        yield srv


def cache_results(server: Server) -> dict[str, float]:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    return {k: float(v) for k, v in re.findall(r'^orderfast_read_cache_total\{result="(\w+)"\} (\S+)$', text, re.M)}


def test_a_second_read_is_a_hit_and_a_change_is_seen_at_once(cached: Server) -> None:
    with cached.client(f"cache-{uuid.uuid4().hex[:8]}") as c:
        created = c.post("/v1/orders", json=order_body(("SKU-1", 1)), headers={"idempotency-key": uuid.uuid4().hex})
        assert created.status_code == 201, created.text
        path = f"/v1/orders/{created.json()['id']}"
        before = cache_results(cached)
        first = c.get(path)
        second = c.get(path)
        after = cache_results(cached)
        assert first.status_code == second.status_code == 200
        assert first.content == second.content == created.content
        assert first.headers["etag"] == second.headers["etag"]
        assert after["miss"] == before["miss"] + 1 and after["hit"] == before["hit"] + 1, (before, after)
        assert c.get(path, headers={"if-none-match": first.headers["etag"]}).status_code == 304
        assert c.post(f"{path}/cancel").status_code == 200
        changed = c.get(path)
        assert changed.json()["status"] == "CANCELED" and changed.headers["etag"] != first.headers["etag"]
        assert cache_results(cached)["hit"] == after["hit"] + 2, "written through: the change is a hit too"
    with cached.client(f"other-{uuid.uuid4().hex[:8]}") as other:
        assert_problem(other.get(path), 404, "not-found")
