"""The published contract: OpenAPI 3.1, served at /openapi.json and rendered as /docs/reference
by ``orderfast.http.docs`` (which imports this module on the first such request, not at start-up).

The spec is written here, by hand, next to the routes; a test compares the two so neither can
drift. ``/docs/reference`` is the same contract rendered on the server as plain HTML, with no
script at all.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Sequence
from typing import Any

import orjson

from orderfast import __version__, _core

MONEY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "examples": ["199.00"]}
POSITIVE_MONEY = {**MONEY, "pattern": r"^(?!0*(?:\.0*)?$)[0-9]+(\.[0-9]+)?$", "description": "above zero"}
# The active ISO 4217 codes, from the table the core prices with.
CURRENCY = {"type": "string", "enum": _core.currencies(), "examples": ["USD"]}
ID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
COUPON_CODE = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
PROMOTION_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
CUSTOMER_ID = {"type": "string", "minLength": 1, "maxLength": 256, "description": "the principal's id (a token's sub)"}
SKU = {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,64}$"}
TIME = {"type": "string", "format": "date-time"}
CATALOG_TIME = {
    **TIME,
    # The year 1970-9999, each field in its range (whether the day exists, and the UTC value's range
    # near its ends, are past what a pattern says).
    "pattern": r"^(?:19[7-9][0-9]|[2-9][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$",
    "description": "RFC 3339 with an offset; its UTC value from 1970-01-01T00:00:00Z to before 9999-12-31T00:00:00Z",
}
# A percentage as a decimal string with at most 6 decimals, above 0 (the look-ahead refuses zeros)
# and at most 100.
PERCENT = {
    "type": "string",
    "pattern": r"^(?!0*(?:\.0*)?$)0*(?:100(?:\.0{1,6})?|[0-9]{1,2}(?:\.[0-9]{1,6})?)$",
    "description": "above 0 and at most 100, exact to a millionth of a percent",
    "examples": ["15", "12.5"],
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field: null is accepted and means the same as leaving it out."""
    return {**schema, "type": [schema["type"], "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    """A keyset page of ``item``: pass ``next_cursor`` back as ``cursor``; null on the last page."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array", "items": _ref(item)}, "next_cursor": {"type": ["string", "null"]}},
    }


SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string", "description": "this request's X-Request-Id, as in the logs"},
            "outcome": {
                "type": "string",
                "enum": ["not_applied", "unknown"],
                "description": "503 store-unavailable: the change was not made, or may have been (a create-order "
                "timed out after reaching the database): retry with the same Idempotency-Key to learn which",
            },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["pointer", "code", "detail"],
                    "properties": {
                        "pointer": {"type": "string"},
                        "code": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    },
    "OrderRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["currency", "items"],
        # The demo catalog's products (orderfast migrate --seed-demo).
        "examples": [{"currency": "USD", "items": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-3", "quantity": 1}]}],
        "properties": {
            "currency": CURRENCY,
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["sku", "quantity"],
                    "properties": {"sku": SKU, "quantity": {"type": "integer", "minimum": 1, "maximum": 10000}},
                },
            },
            "expected_total": {**MONEY, "type": ["string", "null"]},
            "coupon": _nullable(COUPON_CODE),
        },
    },
    "PriceLine": {
        "type": "object",
        "required": ["sku", "name", "quantity", "unit_price", "discount", "tax", "tax_rate", "total"],
        "properties": {
            "sku": SKU,
            "name": {"type": "string"},
            "quantity": {"type": "integer"},
            "unit_price": MONEY,
            "discount": MONEY,
            "tax": MONEY,
            "tax_rate": {"type": "string"},
            "total": MONEY,
        },
    },
    "Quote": {
        "type": "object",
        "required": ["currency", "lines", "subtotal", "discount", "tax", "total", "coupon", "prices_include_tax"],
        "properties": {
            "currency": CURRENCY,
            "lines": {"type": "array", "items": _ref("PriceLine")},
            "subtotal": MONEY,
            "discount": MONEY,
            "tax": MONEY,
            "total": MONEY,
            "coupon": {"type": ["string", "null"]},
            "prices_include_tax": {"type": "boolean"},
        },
    },
    "Order": {
        "allOf": [
            _ref("Quote"),
            {
                "type": "object",
                "required": ["id", "status", "customer_id", "cancel_reason", "refunded", "created_at"],
                "properties": {
                    "id": ID,
                    "status": {"enum": ["PENDING_PAYMENT", "PAID", "PARTIALLY_REFUNDED", "REFUNDED", "CANCELED"]},
                    "customer_id": {"type": "string"},
                    "cancel_reason": {"enum": ["customer", "admin", "expired", "payment_failed", None]},
                    "refunded": MONEY,
                    "created_at": TIME,
                },
            },
        ]
    },
    "OrderPage": _page("Order"),
    "ProductRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "price", "currency", "stock"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "price": MONEY,
            "currency": CURRENCY,
            "stock": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000},
            "tax_class": {"type": ["string", "null"]},
            "max_per_order": _nullable(
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": _core.MAX_QUANTITY,
                    "description": "the most one order may hold of this SKU (422 quantity_limit); null: no limit",
                }
            ),
        },
    },
    "Product": {
        "type": "object",
        "required": ["sku", "name", "price", "currency", "stock", "tax_class", "max_per_order", "updated_at"],
        "properties": {
            "sku": SKU,
            "name": {"type": "string"},
            "price": MONEY,
            "currency": CURRENCY,
            "stock": {"type": "integer"},
            "tax_class": {"type": ["string", "null"]},
            "max_per_order": _nullable({"type": "integer"}),
            "updated_at": TIME,
        },
    },
    "ProductPage": _page("Product"),
    "CouponRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["currency"],
        "description": "exactly one of percent_off and amount_off is set",
        "oneOf": [
            {
                "required": ["percent_off"],
                "properties": {"percent_off": {"type": "string"}, "amount_off": {"type": "null"}},
            },
            {
                "required": ["amount_off"],
                "properties": {"amount_off": {"type": "string"}, "percent_off": {"type": "null"}},
            },
        ],
        "properties": {
            "currency": CURRENCY,
            "percent_off": _nullable(PERCENT),
            "amount_off": _nullable(POSITIVE_MONEY),
            "min_subtotal": _nullable(MONEY),
            "skus": _nullable({"type": "array", "items": SKU, "minItems": 1, "maxItems": 1000}),
            "expires_at": _nullable(CATALOG_TIME),
            "max_redemptions": _nullable({"type": "integer", "minimum": 1, "maximum": 10**12}),
        },
    },
    "Coupon": {
        "type": "object",
        "required": [
            "code",
            "currency",
            "percent_off",
            "amount_off",
            "min_subtotal",
            "skus",
            "expires_at",
            "max_redemptions",
            "redemptions",
            "updated_at",
        ],
        "properties": {
            "code": {"type": "string"},
            "currency": CURRENCY,
            "percent_off": {"type": ["string", "null"]},
            "amount_off": _nullable(MONEY),
            "min_subtotal": _nullable(MONEY),
            "skus": {"type": ["array", "null"], "items": SKU},
            "expires_at": _nullable(TIME),
            "max_redemptions": {"type": ["integer", "null"]},
            "redemptions": {"type": "integer"},
            "updated_at": TIME,
        },
    },
    "CouponPage": _page("Coupon"),
    "PromotionRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["skus", "percent_off"],
        "properties": {
            "skus": {"type": "array", "items": SKU, "minItems": 1, "maxItems": 1000},
            "percent_off": PERCENT,
            "min_quantity": _nullable({"type": "integer", "minimum": 1, "maximum": 10_000}),
            "starts_at": _nullable(CATALOG_TIME),
            "ends_at": _nullable(CATALOG_TIME),
        },
    },
    "Promotion": {
        "type": "object",
        "required": ["id", "skus", "percent_off", "min_quantity", "starts_at", "ends_at", "updated_at"],
        "properties": {
            "id": {"type": "string"},
            "skus": {"type": "array", "items": SKU},
            "percent_off": {"type": "string"},
            "min_quantity": {"type": "integer"},
            "starts_at": _nullable(TIME),
            "ends_at": _nullable(TIME),
            "updated_at": TIME,
        },
    },
    "PromotionPage": _page("Promotion"),
    "RestrictionsRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "what this customer may order; an absent field restricts nothing, so {} lifts them all",
        "properties": {
            "blocked": {"type": "boolean", "description": "true: every order is refused (403 customer-blocked)"},
            "max_order_value": {
                "type": "object",
                "description": "currency -> the largest order total (422 order_value_limit)",
                "propertyNames": CURRENCY,
                "additionalProperties": POSITIVE_MONEY,
            },
            "max_open_orders": _nullable(
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1_000_000,
                    "description": "the most unpaid orders at once (422 open_orders_limit)",
                }
            ),
        },
    },
    "Restrictions": {
        "type": "object",
        "required": ["customer_id", "blocked", "max_order_value", "max_open_orders", "updated_at"],
        "properties": {
            "customer_id": {"type": "string"},
            "blocked": {"type": "boolean"},
            "max_order_value": {"type": "object", "additionalProperties": {"type": "string"}},
            "max_open_orders": _nullable({"type": "integer"}),
            "updated_at": TIME,
        },
    },
    "RefundRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": "{} refunds what is left",
        "properties": {"amount": POSITIVE_MONEY},
    },
    "PaymentEvent": {
        "type": "object",
        "required": ["event_id", "order_id", "status", "amount", "currency"],
        "properties": {
            "event_id": {"type": "string"},
            "order_id": ID,
            "status": {"enum": ["succeeded", "failed"]},
            "amount": MONEY,
            "currency": CURRENCY,
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "type", "aggregate_id", "sequence", "occurred_at", "version", "data"],
                    "properties": {
                        "id": ID,
                        "type": {"enum": ["order.created", "order.paid", "order.canceled", "order.refunded"]},
                        "aggregate_id": ID,
                        "sequence": {"type": "integer", "minimum": 1},
                        "occurred_at": TIME,
                        "version": {"type": "integer"},
                        "data": {
                            "description": "the order after the change; but for order.created, with `change`: "
                            "the transition's details (amounts in minor units)",
                            "allOf": [
                                _ref("Order"),
                                {"type": "object", "properties": {"change": {"type": "object"}}},
                            ],
                        },
                    },
                },
            },
            "next_cursor": {"type": "string", "description": "pass it back as `after`"},
        },
    },
    "ApiKeyRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "roles"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
            "roles": {"type": "array", "items": {"enum": ["service", "admin"]}, "minItems": 1},
        },
    },
    "ApiKey": {
        "type": "object",
        "required": ["prefix", "name", "roles", "created_at", "revoked"],
        "properties": {
            "key": {"type": "string", "description": "the key itself: only in the answer that created it"},
            "prefix": {"type": "string"},
            "name": {"type": "string"},
            "roles": {"type": "array", "items": {"enum": ["service", "admin"]}},
            "created_at": TIME,
            "revoked": {"type": "boolean"},
        },
    },
    "ApiKeyList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref("ApiKey")}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "Index": {
        "type": "object",
        "required": ["service", "docs", "openapi"],
        "properties": {k: {"type": "string"} for k in ("service", "docs", "reference", "openapi", "health")},
    },
}

RATE_HEADERS = {
    "RateLimit-Policy": {"schema": {"type": "string"}, "description": 'e.g. "user";q=100;w=1'},
    "RateLimit": {"schema": {"type": "string"}, "description": 'e.g. "user";r=42;t=1'},
}


VALIDATOR_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "strong validator of this representation"},
    "Cache-Control": {"schema": {"type": "string"}, "description": "private, no-cache"},
}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETags the client holds: a match answers 304 Not Modified, without a body",
    "schema": {"type": "string"},
}


def _problems(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "problem", "content": {"application/problem+json": {"schema": _ref("Problem")}}}
        for c in codes
    }


def _op(
    summary: str,
    roles: list[str],
    ok: tuple[int, str | None],
    errors: tuple[int, ...],
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    headers: list[dict[str, Any]] | None = None,
    public: bool = False,
    signed: bool = False,
    created: bool = False,
    validated: bool = False,
) -> dict[str, Any]:
    status, schema = ok
    success: dict[str, Any] = {"description": summary}
    if schema:
        success["content"] = {"application/json": {"schema": _ref(schema)}}
    if not public and not signed:
        success["headers"] = RATE_HEADERS
    op: dict[str, Any] = {
        "summary": summary,
        "x-required-roles": roles,
        "responses": {str(status): success, **_problems(*errors)},
        "parameters": (params or []) + (headers or []),
    }
    if not public and not signed:
        op["security"] = [{"bearer": []}, {"apiKey": []}]
        # 503: the database (or, with fail-closed shared limits, Redis) cannot be reached.
        op["responses"].update(_problems(401, 429, 503))
    else:
        op["security"] = []
    if signed:
        op["responses"].update(_problems(503))
    if created:  # PUT answers 201 when it created the resource, 200 when it replaced it
        op["responses"]["201"] = {**success, "description": "created"}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if validated:  # a conditional GET: ETag on the answer, 304 for a client whose copy is current
        success["headers"] = {**success.get("headers", {}), **VALIDATOR_HEADERS}
        op["parameters"].append(IF_NONE_MATCH)
        op["responses"]["304"] = {"description": "not modified", "headers": VALIDATOR_HEADERS}
    return op


# Admission control may answer any operation but the probes and /metrics 503 `overloaded`; the
# authenticated ones list 503 already.
SHED = (503,)


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# 1-255 visible ASCII characters but `"` and `\`, bare or as a quoted structured-field string.
_KEY_CHARS = r"[!#-\[\]-~]{1,255}"
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "unique per order the client means to create: the same key and body answer the first response again",
    "schema": {"type": "string", "pattern": f'^(?:{_KEY_CHARS}|"{_KEY_CHARS}")$', "examples": ["order-2026-0001"]},
}
# Every keyset listing takes the same two (http/paging.py). A cursor is base64url without padding.
PAGE_PARAMS = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "items per page (default 20)"),
    _query(
        "cursor",
        {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,400}$"},
        "the `next_cursor` of the page before, unchanged (absent: the first page)",
    ),
]
SIGNATURE = {
    "name": "Orderfast-Signature",
    "in": "header",
    "required": True,
    "description": '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with the webhook secret',
    "schema": {"type": "string", "pattern": "^t=[0-9]+(,v1=[0-9a-f]{64})+$"},
}
ANYONE = ["customer", "service", "admin"]

PATHS: dict[str, dict[str, Any]] = {
    "/v1/orders": {
        "post": _op(
            "Create an order",
            ANYONE,
            (201, "Order"),
            (400, 409, 413, 415, 422),
            body="OrderRequest",
            headers=[IDEMPOTENCY],
        ),
        "get": _op("List the caller's orders, newest first", ANYONE, (200, "OrderPage"), (400,), params=PAGE_PARAMS),
    },
    "/v1/orders/{order_id}": {
        "get": _op(
            "An order (owner or admin)", ANYONE, (200, "Order"), (404,), params=[_path("order_id", ID)], validated=True
        )
    },
    "/v1/orders/{order_id}/cancel": {
        "post": _op(
            "Cancel an unpaid order (owner or admin)",
            ANYONE,
            (200, "Order"),
            (404, 409),
            params=[_path("order_id", ID)],
        )
    },
    "/v1/orders/{order_id}/refunds": {
        "post": _op(
            "Refund a paid order",
            ["admin"],
            (200, "Order"),
            (400, 403, 404, 409, 422),
            body="RefundRequest",
            params=[_path("order_id", ID)],
        )
    },
    "/v1/quotes": {
        "post": _op(
            "Price an order without creating it", ANYONE, (200, "Quote"), (400, 409, 413, 415, 422), body="OrderRequest"
        )
    },
    "/v1/products": {
        "get": _op("List products with their stock, by SKU", ANYONE, (200, "ProductPage"), (400,), params=PAGE_PARAMS)
    },
    "/v1/products/{sku}": {
        "put": _op(
            "Create (201) or replace (200) a product",
            ["admin"],
            (200, "Product"),
            (400, 403, 404, 415, 422),
            body="ProductRequest",
            params=[_path("sku", SKU)],
            created=True,
        ),
        "get": _op("A product", ANYONE, (200, "Product"), (404,), params=[_path("sku", SKU)], validated=True),
    },
    "/v1/coupons": {
        "get": _op("List coupons, by code", ["admin"], (200, "CouponPage"), (400, 403), params=PAGE_PARAMS)
    },
    "/v1/coupons/{code}": {
        "put": _op(
            "Create or replace a coupon",
            ["admin"],
            (200, "Coupon"),
            (400, 403, 404, 409, 415, 422),
            body="CouponRequest",
            params=[_path("code", COUPON_CODE)],
            created=True,
        ),
        "get": _op("A coupon", ["admin"], (200, "Coupon"), (403, 404), params=[_path("code", COUPON_CODE)]),
    },
    "/v1/promotions": {
        "get": _op("List promotions, by id", ["admin"], (200, "PromotionPage"), (400, 403), params=PAGE_PARAMS)
    },
    "/v1/promotions/{promotion_id}": {
        "put": _op(
            "Create or replace an automatic promotion",
            ["admin"],
            (200, "Promotion"),
            (400, 403, 404, 415, 422),
            body="PromotionRequest",
            params=[_path("promotion_id", PROMOTION_ID)],
            created=True,
        ),
        "get": _op(
            "A promotion", ["admin"], (200, "Promotion"), (403, 404), params=[_path("promotion_id", PROMOTION_ID)]
        ),
    },
    "/v1/customers/{customer_id}/restrictions": {
        "put": _op(
            "Set a customer's order qualification (blocked, largest order value, most unpaid orders)",
            ["admin"],
            (200, "Restrictions"),
            (400, 403, 404, 415, 422),
            body="RestrictionsRequest",
            params=[_path("customer_id", CUSTOMER_ID)],
            created=True,
        ),
        "get": _op(
            "A customer's order qualification",
            ["admin"],
            (200, "Restrictions"),
            (403, 404),
            params=[_path("customer_id", CUSTOMER_ID)],
        ),
    },
    "/v1/payments/webhook": {
        "post": _op(
            "The payment provider's callback (signed)",
            [],
            (200, "Order"),
            (400, 401, 404, 409, 413, 415, 422, 503),
            body="PaymentEvent",
            headers=[SIGNATURE],
            signed=True,
        )
    },
    "/v1/events": {
        "get": _op(
            "The ordered event feed",
            ["service", "admin"],
            (200, "EventPage"),
            (400, 403),
            params=[
                _query(
                    "after",
                    {"type": "string", "pattern": r"^[0-9]{1,18}$"},
                    "the `next_cursor` of the page before (absent: from the first event)",
                ),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "events per page (default 100)"),
            ],
        )
    },
    "/v1/api-keys": {
        "post": _op(
            "Create an API key (shown once)", ["admin"], (201, "ApiKey"), (400, 403, 415, 422), body="ApiKeyRequest"
        ),
        "get": _op("List API keys", ["admin"], (200, "ApiKeyList"), (403,)),
    },
    "/v1/api-keys/{prefix}": {
        "delete": _op(
            "Revoke an API key",
            ["admin"],
            (204, None),
            (403, 404),
            params=[_path("prefix", {"type": "string", "pattern": "^[0-9a-f]{8}$"})],
        )
    },
    "/livez": {"get": _op("Liveness", [], (200, "Health"), (), public=True)},
    "/readyz": {
        "get": _op("Readiness: 503 while the database does not answer", [], (200, "Health"), (503,), public=True)
    },
    "/startupz": {"get": _op("Start-up finished", [], (200, "Health"), (503,), public=True)},
    "/": {
        "get": _op("Where to start: the documentation, the contract, the probes", [], (200, "Index"), SHED, public=True)
    },
    "/openapi.json": {"get": _op("This document", [], (200, None), SHED, public=True)},
    "/metrics": {
        "get": _op(
            "Prometheus metrics of every worker (here unless ORDERFAST_METRICS_PORT moves them to their own port)",
            [],
            (200, None),
            (),
            public=True,
        )
    },
    "/docs": {"get": _op("Interactive documentation (Swagger UI, served locally)", [], (200, None), SHED, public=True)},
    "/docs/reference": {"get": _op("The contract as plain HTML, no script", [], (200, None), SHED, public=True)},
    "/docs/assets/{name}": {
        "get": _op(
            "The docs page's scripts and styles", [], (200, None), (404, *SHED), params=[_path("name")], public=True
        )
    },
}


OPERATION_IDS = {
    ("post", "/v1/orders"): "createOrder",
    ("get", "/v1/orders"): "listOrders",
    ("get", "/v1/orders/{order_id}"): "getOrder",
    ("post", "/v1/orders/{order_id}/cancel"): "cancelOrder",
    ("post", "/v1/orders/{order_id}/refunds"): "refundOrder",
    ("post", "/v1/quotes"): "quoteOrder",
    ("get", "/v1/products"): "listProducts",
    ("put", "/v1/products/{sku}"): "putProduct",
    ("get", "/v1/products/{sku}"): "getProduct",
    ("get", "/v1/coupons"): "listCoupons",
    ("put", "/v1/coupons/{code}"): "putCoupon",
    ("get", "/v1/coupons/{code}"): "getCoupon",
    ("get", "/v1/promotions"): "listPromotions",
    ("put", "/v1/promotions/{promotion_id}"): "putPromotion",
    ("get", "/v1/promotions/{promotion_id}"): "getPromotion",
    ("put", "/v1/customers/{customer_id}/restrictions"): "putRestrictions",
    ("get", "/v1/customers/{customer_id}/restrictions"): "getRestrictions",
    ("post", "/v1/payments/webhook"): "paymentWebhook",
    ("get", "/v1/events"): "listEvents",
    ("post", "/v1/api-keys"): "createApiKey",
    ("get", "/v1/api-keys"): "listApiKeys",
    ("delete", "/v1/api-keys/{prefix}"): "revokeApiKey",
    ("get", "/livez"): "livez",
    ("get", "/readyz"): "readyz",
    ("get", "/startupz"): "startupz",
    ("get", "/"): "index",
    ("get", "/openapi.json"): "openapi",
    ("get", "/metrics"): "metrics",
    ("get", "/docs"): "docs",
    ("get", "/docs/reference"): "docsReference",
    ("get", "/docs/assets/{name}"): "docsAsset",
}

# What a client can do next with what an answer returned (OpenAPI links): codegen and stateful
# testers (schemathesis' stateful phase) follow them.
_ORDER = {"order_id": "$response.body#/id"}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("post", "/v1/orders", "201"): {
        "GetOrder": ("getOrder", _ORDER),
        "CancelOrder": ("cancelOrder", _ORDER),
        "RefundOrder": ("refundOrder", _ORDER),
    },
    ("post", "/v1/api-keys", "201"): {"RevokeApiKey": ("revokeApiKey", {"prefix": "$response.body#/prefix"})},
    **{
        ("put", f"/v1/{kind}/{{{param}}}", status): {f"Get{name}": (f"get{name}", {param: f"$request.path.{param}"})}
        for kind, param, name in (
            ("products", "sku", "Product"),
            ("coupons", "code", "Coupon"),
            ("promotions", "promotion_id", "Promotion"),
        )
        for status in ("200", "201")
    },
}


# Swagger UI and the reference page group operations by tag, in this order.
TAGS = [
    ("Orders", "Create, read, list and cancel orders; price a basket; refunds", ("/v1/orders", "/v1/quotes")),
    ("Payments", "The payment provider's signed callback", ("/v1/payments",)),
    ("Catalog", "Products, coupons and automatic promotions", ("/v1/products", "/v1/coupons", "/v1/promotions")),
    ("Events", "The ordered feed of order events (the outbox)", ("/v1/events",)),
    ("API keys", "Keys for service integrations", ("/v1/api-keys",)),
    ("Operations", "Probes, this contract and its documentation", ("/",)),
]


def _tag(path: str) -> str:
    return next(name for name, _, prefixes in TAGS if path.startswith(prefixes))


def _annotate(paths: dict[str, dict[str, Any]]) -> None:
    for path, operations in paths.items():
        for operation in operations.values():
            operation["tags"] = [_tag(path)]
            operation["responses"] = dict(sorted(operation["responses"].items()))
    for (method, path), operation_id in OPERATION_IDS.items():
        paths[path][method]["operationId"] = operation_id
    for (method, path, status), links in LINKS.items():
        response = paths[path][method]["responses"][status]
        paths[path][method]["responses"][status] = {
            **response,
            "links": {name: {"operationId": target, "parameters": params} for name, (target, params) in links.items()},
        }


_annotate(PATHS)


def spec(tax_classes: Sequence[str] = ()) -> dict[str, Any]:
    """The contract; ``tax_classes`` are the server's configured ones (a product names one of them)."""
    schemas = copy.deepcopy(SCHEMAS)
    schemas["ProductRequest"]["properties"]["tax_class"] = {
        "enum": [*sorted(tax_classes), None],
        "description": "a class of ORDERFAST_TAX_RATES (on this server: "
        + (", ".join(sorted(tax_classes)) or "none")
        + "); null or absent: untaxed",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orderfast",
            "version": __version__,
            "description": "Idempotent orders, exact money. Amounts are decimal strings in the currency's minor "
            "unit; every error is an RFC 9457 problem document.",
        },
        "tags": [{"name": name, "description": description} for name, description, _ in TAGS],
        "paths": PATHS,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


def _schema_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _schema_brief(schema: dict[str, Any]) -> str:
    """One line for a parameter's schema: its type and the rules on it."""
    rules = [
        f"{key} {schema[key]}"
        for key in ("minimum", "maximum", "minLength", "maxLength", "pattern", "format")
        if key in schema
    ]
    kind = schema.get("type", "")
    return ", ".join([str(kind), *rules]) if rules else str(kind)


def _docs_html(doc: dict[str, Any]) -> str:
    """The whole contract as one static page: operations grouped by tag, each with its roles,
    parameters (path, query, headers), body and responses (sorted, each with its schema), then
    every schema."""
    e = html.escape

    def schema_link(schema: dict[str, Any] | None) -> str:
        name = _schema_name(schema or {})
        return f' <a href="#schema-{e(name)}">{e(name)}</a>' if name else ""

    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8><title>orderfast API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem}"
        "code,pre{background:#f4f4f4}h3{margin-bottom:.2rem}.m{font-weight:bold;text-transform:uppercase}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}</style>",
        f"<h1>orderfast {e(doc['info']['version'])}</h1><p>{e(doc['info']['description'])} "
        "The machine-readable contract is <a href=/openapi.json>/openapi.json</a> (OpenAPI 3.1).</p>",
        "<p>" + " · ".join(f'<a href="#tag-{e(t["name"])}">{e(t["name"])}</a>' for t in doc["tags"]) + "</p>",
    ]
    for tag in doc["tags"]:
        parts.append(f'<h2 id="tag-{e(tag["name"])}">{e(tag["name"])}</h2><p>{e(tag["description"])}.</p>')
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                if op["tags"] != [tag["name"]]:
                    continue
                roles = ", ".join(op["x-required-roles"]) or "no token"
                parts.append(
                    f'<h3 id="{e(op["operationId"])}"><span class=m>{e(method)}</span> <code>{e(path)}</code></h3>'
                    f"<p>{e(op['summary'])}. Roles: {e(roles)}.</p>"
                )
                if op["parameters"]:
                    rows = "".join(
                        f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                        f"<td>{'required' if p.get('required') else 'optional'}</td>"
                        f"<td><code>{e(_schema_brief(p['schema']))}</code></td>"
                        f"<td>{e(p.get('description', ''))}</td></tr>"
                        for p in op["parameters"]
                    )
                    parts.append(
                        f"<table><tr><th>parameter</th><th>in</th><th></th><th>schema</th><th></th></tr>{rows}</table>"
                    )
                if "requestBody" in op:
                    body = op["requestBody"]["content"]["application/json"]["schema"]
                    parts.append(f"<p>Body (application/json):{schema_link(body)}</p>")
                rows = ""
                for code, response in op["responses"].items():
                    content: dict[str, Any] = response.get("content", {})
                    kind, media = next(iter(content.items())) if content else ("", {})
                    headers = ", ".join(response.get("headers", {}))
                    rows += (
                        f"<tr><td>{e(code)}</td><td>{e(response['description'])}</td>"
                        f"<td>{e(kind)}{schema_link(media.get('schema') if media else None)}</td>"
                        f"<td>{e(headers)}</td></tr>"
                    )
                parts.append(f"<table><tr><th>status</th><th></th><th>body</th><th>headers</th></tr>{rows}</table>")
    parts.append("<h2 id=schemas>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        text = orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode()
        parts.append(f'<h3 id="schema-{e(name)}">{e(name)}</h3><pre>{e(text)}</pre>')
    return "".join(parts)
