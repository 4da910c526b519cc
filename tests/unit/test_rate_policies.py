"""Finer rate-limit policies: the TOML file, its refusals, and which policies a route gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderfast.app import create_app
from orderfast.config import ConfigError, PolicyFile, RatePolicy, RateQuota, Secret, Settings, load_rate_policies
from orderfast.http.guard import RoutePolicies

POLICIES = """
[policies.checkout]
limit = "10/60"
burst = 5
key = "user"
routes = ["POST /v1/orders", "POST /v1/quotes"]

[policies.lookups]
limit = "50/1"
key = "ip"
routes = ["GET /v1/orders/*", "* /v1/products/*"]
"""

SECRET = Secret("k" * 40)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return path


def test_the_file_is_read_into_policies(tmp_path: Path) -> None:
    settings = Settings.from_env({"ORDERFAST_RATELIMIT_FILE": str(write(tmp_path, POLICIES))})
    assert settings.ratelimit_policies == (
        RatePolicy("checkout", "user", RateQuota(10, 60.0, 5), (("POST", "/v1/orders"), ("POST", "/v1/quotes"))),
        RatePolicy("lookups", "ip", RateQuota(50, 1.0, 100), (("GET", "/v1/orders/*"), ("*", "/v1/products/*"))),
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[policies.checkout\n", "not valid TOML"),
        ("[limits.x]\n", "unknown top-level keys"),
        ('[policies.user]\nlimit="1/1"\nkey="user"\nroutes=["GET /v1/orders"]\n', "not user or ip"),
        ('[policies.Bad]\nlimit="1/1"\nkey="user"\nroutes=["GET /v1/orders"]\n', "names are"),
        ('[policies.a]\nlimit=5\nkey="user"\nroutes=["GET /v1/orders"]\n', "limit must be a string"),
        ('[policies.a]\nlimit="x/1"\nkey="user"\nroutes=["GET /v1/orders"]\n', "<quota>/<seconds>"),
        ('[policies.a]\nlimit="1/1"\nkey="host"\nroutes=["GET /v1/orders"]\n', 'key must be "user" or "ip"'),
        ('[policies.a]\nlimit="1/1"\nkey="ip"\nroutes=[]\n', "non-empty list"),
        ('[policies.a]\nlimit="1/1"\nkey="ip"\nroutes=["GET /orders"]\n', "must look like"),
        ('[policies.a]\nlimit="1/1"\nkey="ip"\nroutes=["FETCH /v1/orders"]\n', "must look like"),
        ('[policies.a]\nlimit="1/1"\nkey="ip"\nburst="2"\nroutes=["GET /v1/orders"]\n', "burst must be an integer"),
        ('[policies.a]\nlimit="1/1"\nkey="ip"\nwindow=1\nroutes=["GET /v1/orders"]\n', "unknown keys"),
    ],
)
def test_a_bad_file_is_refused_with_a_reason(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_rate_policies(write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        Settings.from_env({"ORDERFAST_RATELIMIT_FILE": str(tmp_path / "nope.toml")})


def policies(tmp_path: Path) -> RoutePolicies:
    finer = load_rate_policies(write(tmp_path, POLICIES))
    return RoutePolicies(
        [
            ("user", "user", 100, 1.0, 200, ()),
            ("ip", "ip", 1000, 1.0, 2000, ()),
            *((p.name, p.key, p.quota.quota, p.quota.period, p.quota.burst, p.routes) for p in finer),
        ]
    )


def test_each_route_gets_the_defaults_and_the_policies_that_name_it(tmp_path: Path) -> None:
    rp = policies(tmp_path)
    create = rp.group("POST", "/v1/orders")
    assert create.kinds == ("user", "ip", "user", None)
    assert create.keys("alice", "10.0.0.1") == ["alice", "10.0.0.1", "alice", None]
    assert create.policy_header == b'"user";q=100;w=1, "ip";q=1000;w=1, "checkout";q=10;w=60'
    assert rp.group("GET", "/v1/orders").kinds == ("user", "ip", None, None), "a listing is not a lookup"
    assert rp.group("GET", "/v1/orders/0190-abc").kinds == ("user", "ip", None, "ip")
    assert rp.group("GET", "/v1/orders/0190-abc/events").kinds == ("user", "ip", None, None), "* is one segment"
    assert rp.group("DELETE", "/v1/products/SKU-1").kinds == ("user", "ip", None, "ip"), "* as the method"
    assert rp.group("POST", "/v1/orders") is create, "groups are built once and shared"


def test_refused_credentials_are_charged_to_the_ip_default_only(tmp_path: Path) -> None:
    anonymous = policies(tmp_path).anonymous
    assert anonymous.keys(None, "10.0.0.1") == [None, "10.0.0.1", None, None]
    assert anonymous.policy_header == b'"ip";q=1000;w=1'


def test_a_policy_that_names_no_route_refuses_to_start(tmp_path: Path) -> None:
    typo = RatePolicy("checkout", "user", RateQuota(1, 1.0, 1), (("POST", "/v1/order"),))
    with pytest.raises(ConfigError, match="'checkout' names no route"):
        create_app(Settings(data_dir=tmp_path, jwt_secret=SECRET, ratelimit_file=PolicyFile(tmp_path, (typo,))))
    fine = RatePolicy("checkout", "user", RateQuota(1, 1.0, 1), (("POST", "/v1/orders/*/cancel"),))
    fine_file = PolicyFile(tmp_path, (fine,))
    assert create_app(Settings(data_dir=tmp_path, jwt_secret=SECRET, ratelimit_file=fine_file)) is not None


def test_building_the_app_writes_nothing(tmp_path: Path) -> None:
    """No development secret appears as a side effect: without one the app refuses to build."""
    with pytest.raises(ConfigError, match="no JWT secret"):
        create_app(Settings(data_dir=tmp_path))
    assert not any(tmp_path.iterdir())
