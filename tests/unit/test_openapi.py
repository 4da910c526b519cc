"""The published OpenAPI document matches the routes the app really serves, and says who may call."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from orderfast import _core
from orderfast.app import create_app
from orderfast.config import Settings
from orderfast.http.openapi import IDEMPOTENCY, _docs_html, spec
from orderfast.http.problems import Problem
from orderfast.http.request import idempotency_key


def routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings.from_env({"ORDERFAST_DATA_DIR": str(tmp_path), "ORDERFAST_JWT_SECRET": "k" * 40}))
    served = set()
    for route in app.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((route.path, method.lower()))
    return served


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    documented = {(path, method) for path, ops in spec()["paths"].items() for method in ops}
    assert documented == routes(tmp_path)


def test_every_operation_names_roles_security_and_problem_responses() -> None:
    doc = spec()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "x-required-roles" in op, (path, method)
            assert "security" in op, (path, method)
            assert any(code.startswith("2") for code in op["responses"]), (path, method)
            if path.startswith("/v1/") and path != "/v1/payments/webhook":
                assert {"401", "429"} <= set(op["responses"]), (path, method)
                assert "RateLimit" in next(r for c, r in op["responses"].items() if c.startswith("2"))["headers"]
            for placeholder in re.findall(r"{(\w+)}", path):
                assert any(p["name"] == placeholder and p["in"] == "path" for p in op["parameters"]), (path, method)


def test_every_schema_reference_resolves() -> None:
    doc = spec()
    text = repr(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in doc["components"]["schemas"], name


def test_operation_ids_are_unique_and_every_link_targets_one_with_its_parameters() -> None:
    doc = spec()
    ops = {op["operationId"]: (path, op) for path, methods in doc["paths"].items() for op in methods.values()}
    assert len(ops) == sum(len(methods) for methods in doc["paths"].values()), "one id per operation"
    links = [
        link
        for methods in doc["paths"].values()
        for op in methods.values()
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert len(links) >= 6
    for link in links:
        path, _ = ops[link["operationId"]]
        for name in link["parameters"]:
            assert f"{{{name}}}" in path, (link, path)


def test_every_keyset_listing_documents_its_paging_parameters_and_their_400() -> None:
    doc = spec()
    schemas = doc["components"]["schemas"]
    listings = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ref = op["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
            page = schemas.get(ref.get("$ref", "").rsplit("/", 1)[-1], {})
            if "null" in page.get("properties", {}).get("next_cursor", {}).get("type", []):
                listings[(method, path)] = op
    assert set(listings) == {
        ("get", "/v1/orders"),
        ("get", "/v1/products"),
        ("get", "/v1/coupons"),
        ("get", "/v1/promotions"),
    }
    for op in listings.values():
        params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
        assert set(params) == {"limit", "cursor"}
        assert (params["limit"]["schema"]["minimum"], params["limit"]["schema"]["maximum"]) == (1, 100)
        assert "400" in op["responses"]


def test_operations_are_tagged_and_their_status_codes_sorted() -> None:
    doc = spec()
    tags = [t["name"] for t in doc["tags"]]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert len(op["tags"]) == 1 and op["tags"][0] in tags, (path, method)
            assert list(op["responses"]) == sorted(op["responses"]), (path, method)
    assert doc["paths"]["/v1/orders"]["post"]["tags"] == ["Orders"]
    assert doc["paths"]["/v1/coupons/{code}"]["put"]["tags"] == ["Catalog"]
    assert doc["paths"]["/readyz"]["get"]["tags"] == ["Operations"]


def test_currencies_and_tax_classes_are_the_servers() -> None:
    assert spec()["components"]["schemas"]["OrderRequest"]["properties"]["currency"]["enum"] == _core.currencies()
    product = spec(["standard", "reduced"])["components"]["schemas"]["ProductRequest"]["properties"]["tax_class"]
    assert product["enum"] == ["reduced", "standard", None]
    assert spec()["components"]["schemas"]["ProductRequest"]["properties"]["tax_class"]["enum"] == [None]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=260))
def test_the_idempotency_key_pattern_is_the_servers_rule(key: str) -> None:
    """What the spec's pattern accepts is exactly what the server takes as a key (header values come
    trimmed of surrounding spaces)."""
    pattern = IDEMPOTENCY["schema"]["pattern"]
    stripped = key.strip(" \t")
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"idempotency-key", stripped.encode())]}
    try:
        idempotency_key(scope)
        accepted = True
    except Problem:
        accepted = False
    assert (re.fullmatch(pattern, stripped) is not None) == accepted, stripped


def test_the_reference_page_shows_parameters_headers_and_response_schemas() -> None:
    page = _docs_html(spec())
    for text in (
        "<code>Idempotency-Key</code></td><td>header",
        "<code>Orderfast-Signature</code></td><td>header",
        "<code>cursor</code></td><td>query",
        "<code>limit</code></td><td>query",
        '<a href="#schema-OrderPage">OrderPage</a>',
        'id="schema-Problem"',
        'id="tag-Catalog"',
    ):
        assert text in page, text
    create = page.split('id="createOrder"', 1)[1].split("<h3", 1)[0]
    codes = re.findall(r"<tr><td>(\d{3})</td>", create)
    assert codes == sorted(codes) and {"201", "400", "409", "422"} <= set(codes)
