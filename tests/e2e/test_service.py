"""Probes, authentication and the per-user rate limit through the real server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from orderfast.http.auth import mint_token
from tests.e2e.conftest import Server, running
from tests.e2e.test_orders import assert_problem


def test_probes(server: Server) -> None:
    with server.client() as anon:
        assert anon.get("/livez").json() == {"status": "ok"}
        assert anon.get("/startupz").status_code == 200
        ready = anon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


def test_v1_requires_a_valid_bearer_token(server: Server) -> None:
    with server.client() as anon:
        r = anon.get("/v1/orders")
        assert_problem(r, 401, "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        for auth in [
            "Bearer",
            "Basic dXNlcjpwdw==",
            "Bearer not.a.jwt",
            "Bearer " + mint_token("another-secret-" + "y" * 40, "u-1"),
            "Bearer " + mint_token(server.env["ORDERFAST_JWT_SECRET"], "u-1", ttl=-3600),
        ]:
            assert_problem(anon.get("/v1/orders", headers={"authorization": auth}), 401, "unauthorized")


def test_unknown_routes_and_methods_are_problems(server: Server) -> None:
    with server.client("u-1") as c:
        assert_problem(c.get("/v1/nothing-here"), 404, "not-found")
        not_allowed = c.delete("/v1/orders")
        assert_problem(not_allowed, 405, "method-not-allowed")
        assert not_allowed.headers["allow"] == "GET, HEAD, POST", "every method the path serves"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Limits are per worker process: one worker makes the count exact.
    env = {"ORDERFAST_RATELIMIT_USER": "3/3600", "ORDERFAST_RATELIMIT_USER_BURST": "3"}
    with running(tmp_path_factory, env, workers=1) as srv:
        yield srv


QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"


def assert_quota_exceeded(r: httpx.Response) -> dict[str, object]:
    """The ratelimit-headers draft's problem: its IANA type and the violated-policies member."""
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc: dict[str, object] = r.json()
    assert (doc["type"], doc["status"], doc["title"]) == (QUOTA_EXCEEDED, 429, "Quota exceeded")
    return doc


def test_rate_limit_per_user_answers_429_with_retry_after(limited: Server) -> None:
    user = f"u-{uuid.uuid4().hex[:6]}"
    with limited.client(user) as c, limited.client("other-user") as other:
        first = c.get("/v1/orders")
        # Written from the draft: the policy, and what is left of it after this request.
        assert first.headers["ratelimit-policy"] == '"user";q=3;w=3600, "ip";q=1000000;w=1'
        assert first.headers["ratelimit"].startswith('"user";r=2;t=')
        codes = [c.get("/v1/orders").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = c.get("/v1/orders")
        doc = assert_quota_exceeded(r)
        assert doc["violated-policies"] == ["user"]
        assert r.headers["ratelimit"].startswith('"user";r=0;t=')
        assert "ratelimit-policy" in r.headers
        # 3 per hour: the next token is 20 minutes away, and Retry-After is never earlier than that.
        assert 1200 <= int(r.headers["retry-after"]) <= 1201
        assert "quota" in str(doc["detail"])
        assert other.get("/v1/orders").status_code == 200, "other users are not affected"
    with httpx.Client(base_url=limited.base_url) as anon:
        assert anon.get("/livez").status_code == 200, "probes are never rate limited"


@pytest.fixture(scope="module")
def ip_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Limits are per worker process: one worker makes the count exact.
    env = {"ORDERFAST_RATELIMIT_IP": "4/3600", "ORDERFAST_RATELIMIT_IP_BURST": "4"}
    with running(tmp_path_factory, env, workers=1) as srv:
        yield srv


def test_per_ip_policy_limits_every_user_from_one_address(ip_limited: Server) -> None:
    codes = []
    for i in range(5):
        with ip_limited.client(f"ip-user-{i}") as c:
            codes.append(c.get("/v1/orders").status_code)
    assert codes == [200, 200, 200, 200, 429]
    with ip_limited.client("one-more") as c:
        r = c.get("/v1/orders")
    assert assert_quota_exceeded(r)["violated-policies"] == ["ip"]


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "ORDERFAST_RATELIMIT_IP": "1/3600",
        "ORDERFAST_RATELIMIT_IP_BURST": "1",
        "ORDERFAST_TRUSTED_PROXIES": "127.0.0.1",
    }
    with running(tmp_path_factory, env, workers=1) as srv:
        yield srv


def test_forwarded_for_is_believed_only_from_trusted_proxies(behind_proxy: Server) -> None:
    with behind_proxy.client("proxied") as c:
        # Two clients behind the (trusted) loopback proxy: one IP bucket each.
        assert c.get("/v1/orders", headers={"x-forwarded-for": "203.0.113.7"}).status_code == 200
        assert c.get("/v1/orders", headers={"x-forwarded-for": "203.0.113.8"}).status_code == 200
        again = c.get("/v1/orders", headers={"x-forwarded-for": "198.51.100.1, 203.0.113.7"})
        assert assert_quota_exceeded(again)["violated-policies"] == ["ip"], "the right-most untrusted hop counts"


def test_refused_credentials_cost_the_client_address_its_quota(behind_proxy: Server) -> None:
    guesser = {"x-forwarded-for": "203.0.113.50"}
    with httpx.Client(base_url=behind_proxy.base_url) as c:
        first = c.get("/v1/orders", headers={**guesser, "authorization": "Bearer guess-1"})
        assert first.status_code == 401 and first.headers["ratelimit-policy"] == '"ip";q=1;w=3600'
        second = c.get("/v1/orders", headers={**guesser, "x-api-key": "of_guess_2"})
        assert assert_quota_exceeded(second)["violated-policies"] == ["ip"], "guessing is limited like anything else"
    with behind_proxy.client("honest") as c:
        assert c.get("/v1/orders", headers=guesser).status_code == 429, "the address's quota is spent"
        assert c.get("/v1/orders", headers={"x-forwarded-for": "203.0.113.51"}).status_code == 200


@pytest.fixture(scope="module")
def route_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    policy_file = tmp_path_factory.mktemp("policies") / "limits.toml"
    policy_file.write_text(
        "[policies.checkout]\n"
        'limit = "2/3600"\nburst = 2\nkey = "user"\nroutes = ["POST /v1/orders"]\n'
        "[policies.lookups]\n"
        'limit = "100/1"\nkey = "ip"\nroutes = ["GET /v1/orders/*"]\n'
    )
    env = {"ORDERFAST_RATELIMIT_USER": "10/3600", "ORDERFAST_RATELIMIT_USER_BURST": "10"}
    with running(tmp_path_factory, {**env, "ORDERFAST_RATELIMIT_FILE": str(policy_file)}, workers=1) as srv:
        yield srv


def user_remaining(r: httpx.Response) -> int:
    first = r.headers["ratelimit"].split(",")[0]
    assert first.startswith('"user";r=')
    return int(first.split(";")[1][2:])


def test_finer_policies_from_the_file_apply_to_their_routes_only(route_limited: Server) -> None:
    with route_limited.client(f"u-{uuid.uuid4().hex[:6]}") as c:
        listing = c.get("/v1/orders")
        assert listing.headers["ratelimit-policy"] == '"user";q=10;w=3600, "ip";q=1000000;w=1'
        lookup = c.get(f"/v1/orders/{uuid.uuid4()}")
        assert lookup.headers["ratelimit-policy"].endswith(', "lookups";q=100;w=1')
        assert '"lookups";r=' in lookup.headers["ratelimit"]
        # The guard decides before the body is read: an empty body costs a token like any other.
        posts = [c.post("/v1/orders", json={}, headers={"idempotency-key": f"k-{i}"}) for i in range(2)]
        assert [p.status_code for p in posts] == [422, 422]
        assert posts[1].headers["ratelimit-policy"].endswith(', "checkout";q=2;w=3600')
        assert '"checkout";r=0;' in posts[1].headers["ratelimit"]
        before = user_remaining(posts[1])
        refused = c.post("/v1/orders", json={}, headers={"idempotency-key": "k-3"})
        assert assert_quota_exceeded(refused)["violated-policies"] == ["checkout"]
        assert 1800 <= int(refused.headers["retry-after"]) <= 1801, "2 per hour: a token every 30 minutes"
        after = c.get("/v1/orders")
        assert after.status_code == 200, "the other routes of the same user are untouched"
        # All or nothing: the refused request took no token from the user's default policy.
        assert user_remaining(after) == before - 1


def test_security_headers_on_every_response(server: Server) -> None:
    with server.client("u-sec") as c:
        for r in [c.get("/livez"), c.get("/v1/orders"), c.get("/v1/nothing"), c.post("/v1/orders", content=b"{")]:
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["content-security-policy"].startswith("default-src 'none'")
            assert r.headers["cache-control"] == "no-store"
            assert "server: orderfast" not in str(r.headers).lower()


EXTERNAL_URL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


def test_openapi_and_offline_docs(server: Server) -> None:
    with httpx.Client(base_url=server.base_url) as anon:
        doc = anon.get("/openapi.json").json()
        assert doc["openapi"] == "3.1.0" and "/v1/orders" in doc["paths"]
        page = anon.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert not EXTERNAL_URL.search(page.text), "the page names no external URL"
        # Everything the page loads comes from this server, and is there.
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/init.js", "/docs/assets/swagger-ui.css"} <= set(
            loaded
        )
        for url in loaded:
            assert url.startswith("/"), url
            r = anon.get(url)
            assert r.status_code == 200, url
        bundle = anon.get("/docs/assets/swagger-ui-bundle.js")
        assert bundle.headers["content-type"].startswith("text/javascript") and b"SwaggerUIBundle" in bundle.content
        init = anon.get("/docs/assets/init.js").text
        assert 'url: "/openapi.json"' in init and "validatorUrl: null" in init, "no call to the public validator"
        assert not EXTERNAL_URL.search(init)
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
        assert "<script>" not in page.text, "no inline script: the CSP allows none"
        assert_problem(anon.get("/docs/assets/../../etc/passwd"), 404, "not-found")
        assert_problem(anon.get("/docs/assets/swagger-ui.js.map"), 404, "not-found")
        reference = anon.get("/docs/reference")
    assert reference.status_code == 200 and "/v1/orders" in reference.text
    assert "<script" not in reference.text.lower() and not EXTERNAL_URL.search(reference.text)


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Server]:
    env = {
        "ORDERFAST_REDIS_URL": redis_url,
        "ORDERFAST_RELAY_IN_PROCESS": "false",
        "ORDERFAST_RATELIMIT_USER": "3/3600",
        "ORDERFAST_RATELIMIT_USER_BURST": "3",
    }
    with running(tmp_path_factory, env, workers=2) as srv:
        yield srv


def test_with_redis_the_quota_holds_across_worker_processes(clustered: Server) -> None:
    user = f"cluster-{uuid.uuid4().hex[:8]}"
    codes = []
    for _ in range(8):  # new connections: the two workers share the requests
        with clustered.client(user) as c:
            codes.append(c.get("/v1/orders").status_code)
    assert codes.count(200) == 3, codes  # per-worker limits alone would admit up to 6
    assert codes[3:] == [429] * 5
