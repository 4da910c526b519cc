"""What a schema-valid request may still be refused for: the rules of the API that its OpenAPI
document cannot state in JSON Schema. This list is the whole of it.

schemathesis' ``positive_data_acceptance`` check only sees status codes; the check below is
stricter: a schema-valid request answered 400 or 422 passes only when the problem (its ``type``
and, for a validation error, every ``pointer`` and ``code`` in ``errors``) is one of these rules
for that operation. Anything else the server refuses is a gap in the spec, and fails the run.
Loaded by ``tests/e2e/test_schemathesis.py`` (``SCHEMATHESIS_HOOKS``).
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis

# (operations, problem type, error pointer pattern, error codes): why JSON Schema cannot say it.
Rule = tuple[frozenset[str], str, str, frozenset[str]]
ORDER_BODIES = frozenset({"POST /v1/orders", "POST /v1/quotes"})
LISTINGS = frozenset({"GET /v1/orders", "GET /v1/products", "GET /v1/coupons", "GET /v1/promotions"})
VALIDATION = "/problems/validation-error"
INEXPRESSIBLE: list[tuple[Rule, str]] = [
    (
        (ORDER_BODIES, VALIDATION, r"/items/\d+/sku", frozenset({"unknown_sku", "currency_mismatch"})),
        "whether the catalog holds a SKU, and in which currency, is the server's state, not the body's shape",
    ),
    (
        (
            ORDER_BODIES,
            VALIDATION,
            r"/coupon",
            frozenset(
                {
                    "unknown_coupon",
                    "coupon_expired",
                    "coupon_currency_mismatch",
                    "coupon_min_subtotal",
                    "coupon_not_applicable",
                    "coupon_exhausted",
                }
            ),
        ),
        "whether a coupon exists and applies to this basket is state",
    ),
    (
        (ORDER_BODIES, VALIDATION, r"/items/\d+/quantity", frozenset({"quantity_limit"})),
        "a product's max_per_order is the catalog's state (order qualification)",
    ),
    (
        (ORDER_BODIES, VALIDATION, r"(/items|)", frozenset({"order_value_limit", "open_orders_limit"})),
        "what a customer may order is the server's state (order qualification)",
    ),
    (
        (ORDER_BODIES, VALIDATION, r"/items/\d+/sku", frozenset({"duplicate"})),
        "each SKU at most once per order: uniqueItems compares whole items, not one field of them",
    ),
    (
        (frozenset({"POST /v1/orders"}), "/problems/idempotency-key-reused", "", frozenset()),
        "an Idempotency-Key already used with another body: state",
    ),
    (
        (ORDER_BODIES, VALIDATION, r"/expected_total", frozenset({"invalid_amount"})),
        "an amount has at most as many decimals as its currency's minor unit: a rule across two fields",
    ),
    (
        (ORDER_BODIES, VALIDATION, r"(/items/\d+/quantity|/expected_total|)", frozenset({"amount_overflow"})),
        "a total overflows depending on the catalog's prices",
    ),
    (
        (
            frozenset({"PUT /v1/products/{sku}", "PUT /v1/coupons/{code}"}),
            VALIDATION,
            r"/(price|amount_off|min_subtotal)",
            frozenset({"invalid_amount"}),
        ),
        "an amount has at most as many decimals as its currency's minor unit: a rule across two fields",
    ),
    (
        (
            frozenset({"PUT /v1/coupons/{code}", "PUT /v1/promotions/{promotion_id}"}),
            VALIDATION,
            r"/(expires_at|starts_at|ends_at)",
            frozenset({"invalid_timestamp"}),
        ),
        "the UTC value of a time with an offset must lie in 1970-01-01T00:00:00Z .. 9999-12-31T00:00:00Z, and "
        "the day must exist (2026-02-30): the pattern checks the digits, not the calendar",
    ),
    (
        (frozenset({"PUT /v1/promotions/{promotion_id}"}), VALIDATION, r"/ends_at", frozenset({"out_of_range"})),
        "ends_at must come after starts_at: a rule across two fields",
    ),
    (
        (
            frozenset({"PUT /v1/customers/{customer_id}/restrictions"}),
            VALIDATION,
            r"/max_order_value/[A-Z]{3}",
            frozenset({"invalid_amount"}),
        ),
        "an amount has at most as many decimals as its currency's minor unit (the key): a rule across two fields",
    ),
    (
        (frozenset({"POST /v1/orders/{order_id}/refunds"}), VALIDATION, r"/amount", frozenset({"invalid_amount"})),
        "a refund has at most as many decimals as the order's currency, which is state",
    ),
    (
        (frozenset({"POST /v1/orders/{order_id}/refunds"}), VALIDATION, r"/amount", frozenset({"refund_too_large"})),
        "at most what was captured and not yet refunded: state",
    ),
    (
        (LISTINGS, "/problems/invalid-cursor", "", frozenset()),
        "a cursor is opaque: only a next_cursor the server gave decodes to a key",
    ),
    (
        (frozenset({"POST /v1/payments/webhook"}), "/problems/payment-mismatch", "", frozenset()),
        "a payment must be for the order's total in its currency: state",
    ),
]


# And one rule for every operation: an integer field (quantity, stock, min_quantity,
# max_redemptions) must be written as an integer — JSON Schema counts 2.0 as the integer 2, so a
# schema-valid body may carry one; the server refuses it with code "type" at that pointer.
INTEGER_WRITTEN_AS_FLOAT = "type"


def _at(body: Any, pointer: str) -> Any:
    for part in pointer.split("/")[1:]:
        if isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        elif isinstance(body, dict) and part in body:
            body = body[part]
        else:
            return None
    return body


def _refusal_is_documented(operation: str, problem: dict[str, Any], body: Any) -> bool:
    rules = [rule for rule, _ in INEXPRESSIBLE if operation in rule[0] and rule[1] == problem.get("type")]
    if problem.get("type") != VALIDATION:
        return bool(rules)
    errors = problem.get("errors") or []

    def documented(error: dict[str, Any]) -> bool:
        pointer, code = error.get("pointer", ""), error.get("code")
        if code == INTEGER_WRITTEN_AS_FLOAT and isinstance(value := _at(body, pointer), float) and value.is_integer():
            return True
        return any(re.fullmatch(p, pointer) and code in codes for _, _, p, codes in rules)

    return bool(errors) and all(documented(e) for e in errors)


@schemathesis.check
def schema_valid_requests_are_refused_only_for_documented_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid (positive) request answered 400 or 422 must be refused for a rule listed above."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return None
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict) or not _refusal_is_documented(operation, problem, case.body):
        raise AssertionError(
            f"a schema-valid request was refused for a rule the spec does not state and "
            f"tests/e2e/schemathesis_hooks.py does not list: {response.status_code} {problem}"
        )
    return None
