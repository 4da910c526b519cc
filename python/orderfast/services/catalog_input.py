"""Validation of catalog write bodies (products, coupons, promotions): every error at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from orderfast import _core
from orderfast.domain.catalog import CouponSpec, ProductSpec, PromotionSpec, in_range
from orderfast.domain.customers import RestrictionsSpec
from orderfast.domain.text import storable
from orderfast.services.errors import InvalidInputError

MAX_NAME_LEN = 200
MAX_STOCK = 1_000_000_000
MAX_SCOPE_SKUS = 1000
MAX_REDEMPTIONS = 10**12
HUNDRED_PERCENT = 100_000_000  # _core.parse_percent units: millionths of a percent

Errors = list[tuple[str, str, str]]


def _pointer(key: object) -> str:
    return "/" + str(key).replace("~", "~0").replace("/", "~1")


def _object(doc: Any, allowed: tuple[str, ...], what: str) -> tuple[dict[str, Any], Errors]:
    if not isinstance(doc, dict):
        raise InvalidInputError([("", "type", "the body must be a JSON object")])
    errors = [(_pointer(k), "unknown_field", f"this field is not part of a {what}") for k in doc if k not in allowed]
    return doc, errors


def _currency(doc: Mapping[str, Any], errors: Errors) -> str | None:
    currency = doc.get("currency")
    if isinstance(currency, str) and _core.currency_exponent(currency) is not None:
        return currency
    errors.append(("/currency", "invalid_currency", "must be an active ISO 4217 code, e.g. USD"))
    return None


def _amount(doc: Mapping[str, Any], key: str, currency: str | None, errors: Errors, *, positive: bool) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append((f"/{key}", "type", 'must be a decimal string such as "19.99"'))
        return None
    if currency is None:
        return None
    try:
        minor = _core.parse_amount(value, currency)
    except ValueError as e:
        errors.append((f"/{key}", "invalid_amount", str(e)))
        return None
    if positive and minor == 0:
        errors.append((f"/{key}", "out_of_range", "must be more than zero"))
    return minor


def _percent(doc: Mapping[str, Any], key: str, errors: Errors) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            if 0 < _core.parse_percent(value) <= HUNDRED_PERCENT:
                return value
        except ValueError:
            pass
    errors.append((f"/{key}", "invalid_percent", 'a percentage string above 0 and at most 100, e.g. "15"'))
    return None


# RFC 3339 date-time (section 5.6), at most microseconds: what fromisoformat would also take in
# other ISO 8601 shapes (basic format, week dates, no offset) is refused.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _timestamp(doc: Mapping[str, Any], key: str, errors: Errors) -> datetime | None:
    """An RFC 3339 time from 1970-01-01T00:00:00Z up to (not including) 9999-12-31T00:00:00Z,
    returned in UTC: a time the stores cannot hold exactly never reaches them."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str) and RFC3339.fullmatch(value):
        try:
            ts = datetime.fromisoformat(value.upper()).astimezone(UTC)
        except (ValueError, OverflowError):  # no such date, or its UTC value is past year 1..9999
            ts = None
        if ts is not None and in_range(ts):
            return ts
    errors.append(
        (
            f"/{key}",
            "invalid_timestamp",
            "an RFC 3339 time with an offset from 1970-01-01T00:00:00Z to before 9999-12-31T00:00:00Z, "
            'e.g. "2026-12-31T23:59:59Z"',
        )
    )
    return None


def _int(
    doc: Mapping[str, Any], key: str, low: int, high: int, errors: Errors, *, required: bool = False
) -> int | None:
    """An integer field, the order quantity's rule: written as an integer (``2.0`` and ``"2"`` are
    not), within its range."""
    value = doc.get(key)
    if value is None:
        if required:
            errors.append((f"/{key}", "required", f"{key} is required, an integer from {low} to {high}"))
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        errors.append((f"/{key}", "type", "must be an integer, written without a fraction or exponent"))
    elif not low <= value <= high:
        errors.append((f"/{key}", "out_of_range", f"an integer from {low} to {high}"))
    else:
        return value
    return None


def _skus(doc: Mapping[str, Any], key: str, errors: Errors, *, required: bool) -> tuple[str, ...] | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if (
        isinstance(value, list)
        and 1 <= len(value) <= MAX_SCOPE_SKUS
        and all(isinstance(s, str) and _core.is_sku(s) for s in value)
    ):
        return tuple(dict.fromkeys(value))
    errors.append((f"/{key}", "invalid_skus", f"a list of 1 to {MAX_SCOPE_SKUS} valid SKUs"))
    return None


def _raise(errors: Errors) -> None:
    if errors:
        raise InvalidInputError(errors)


def parse_product(sku: str, doc: Any, tax_classes: Callable[[str], bool]) -> ProductSpec:
    doc, errors = _object(doc, ("name", "price", "currency", "stock", "tax_class", "max_per_order"), "product")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LEN or not storable(name):
        errors.append(("/name", "invalid", f"a non-empty string of at most {MAX_NAME_LEN} characters, without U+0000"))
    currency = _currency(doc, errors)
    if doc.get("price") is None:  # absent or null
        errors.append(("/price", "required", 'price is required, a decimal string such as "19.99"'))
    price = _amount(doc, "price", currency, errors, positive=False)
    stock = _int(doc, "stock", 0, MAX_STOCK, errors, required=True)
    tax_class = doc.get("tax_class")
    if tax_class is not None and (not isinstance(tax_class, str) or not tax_classes(tax_class)):
        errors.append(("/tax_class", "unknown_tax_class", "not a tax class of the configured tax table"))
    max_per_order = _int(doc, "max_per_order", 1, _core.MAX_QUANTITY, errors)
    _raise(errors)
    assert isinstance(name, str) and currency is not None and price is not None and isinstance(stock, int)
    return ProductSpec(sku, name.strip(), currency, price, stock, tax_class, max_per_order)


def parse_coupon(code: str, doc: Any) -> CouponSpec:
    doc, errors = _object(
        doc,
        ("currency", "percent_off", "amount_off", "min_subtotal", "skus", "expires_at", "max_redemptions"),
        "coupon",
    )
    currency = _currency(doc, errors)
    percent_off = _percent(doc, "percent_off", errors)
    amount_off = _amount(doc, "amount_off", currency, errors, positive=True)
    if (doc.get("percent_off") is None) == (doc.get("amount_off") is None):
        errors.append(("", "one_of", "set exactly one of percent_off and amount_off"))
    spec = CouponSpec(
        code=code,
        currency=currency or "",
        percent_off=percent_off,
        amount_off=amount_off,
        min_subtotal=_amount(doc, "min_subtotal", currency, errors, positive=False),
        skus=_skus(doc, "skus", errors, required=False),
        expires_at=_timestamp(doc, "expires_at", errors),
        max_redemptions=_int(doc, "max_redemptions", 1, MAX_REDEMPTIONS, errors),
    )
    _raise(errors)
    return spec


def parse_promotion(promotion_id: str, doc: Any) -> PromotionSpec:
    doc, errors = _object(doc, ("skus", "percent_off", "min_quantity", "starts_at", "ends_at"), "promotion")
    skus = _skus(doc, "skus", errors, required=True)
    if doc.get("percent_off") is None:
        errors.append(("/percent_off", "required", "percent_off is required"))
    percent_off = _percent(doc, "percent_off", errors)
    min_quantity = _int(doc, "min_quantity", 1, _core.MAX_QUANTITY, errors)
    starts_at = _timestamp(doc, "starts_at", errors)
    ends_at = _timestamp(doc, "ends_at", errors)
    if starts_at and ends_at and ends_at <= starts_at:
        errors.append(("/ends_at", "out_of_range", "must be after starts_at"))
    _raise(errors)
    assert skus is not None and percent_off is not None
    return PromotionSpec(promotion_id, skus, percent_off, min_quantity or 1, starts_at, ends_at)


MAX_OPEN_ORDERS = 1_000_000


def parse_restrictions(customer_id: str, doc: Any) -> RestrictionsSpec:
    """``{"blocked": false, "max_order_value": {"USD": "500.00"}, "max_open_orders": 3}``; every field
    optional (absent: not restricted), so ``{}`` lifts every restriction."""
    body, errors = _object(doc, ("blocked", "max_order_value", "max_open_orders"), "customer's restrictions")
    blocked = body.get("blocked", False)
    if not isinstance(blocked, bool):
        errors.append(("/blocked", "type", "must be true or false"))
    values: dict[str, int] = {}
    raw = body.get("max_order_value", {})
    if not isinstance(raw, dict):
        errors.append(("/max_order_value", "type", 'an object of currency to amount, e.g. {"USD": "500.00"}'))
        raw = {}
    for currency, amount in raw.items():
        where = f"/max_order_value{_pointer(currency)}"
        if _core.currency_exponent(currency) is None:
            errors.append((where, "invalid_currency", "must be an active ISO 4217 code, e.g. USD"))
            continue
        if not isinstance(amount, str):
            errors.append((where, "type", 'must be a decimal string such as "500.00"'))
            continue
        minor = _amount({currency: amount}, currency, currency, errors, positive=True)
        errors[:] = [(where if p == f"/{currency}" else p, c, m) for p, c, m in errors]
        if minor is not None and minor > 0:
            values[currency] = minor
    max_open = _int(body, "max_open_orders", 1, MAX_OPEN_ORDERS, errors)
    _raise(errors)
    return RestrictionsSpec(customer_id, bool(blocked), tuple(sorted(values.items())), max_open)
