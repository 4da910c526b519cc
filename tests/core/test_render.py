"""One rendering of an order: a new order's create response and the same order read back (and in
its events) are the same bytes, and every field reads back as JSON says it should."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import pytest

from orderfast import _core
from orderfast.domain.orders import (
    CancelReason,
    OrderStatus,
    format_timestamp,
    new_order,
    order_json,
    utc_now_ms,
)


def test_a_new_order_and_the_stored_order_render_the_same() -> None:
    catalog = _core.Catalog()
    catalog.upsert(
        [
            ("A-1", 'Caf\u00e9 "quoted" \\ \n\u2028 \U0001f600', "EUR", 1999, "std", None),
            ("B", "b", "EUR", 5, None, None),
        ]
    )
    catalog.set_tax({"std": "19"}, False)
    catalog.upsert_coupons([("C", "EUR", "12.5", None, None, None, None, None, 0)])
    priced = catalog.price(
        _core.parse_order(
            b'{"currency":"EUR","items":[{"sku":"A-1","quantity":3},{"sku":"B","quantity":1}],"coupon":"c"}'
        )
    )
    created = utc_now_ms()
    order = new_order(_core.new_order_id(), "u-\u00fc", priced, created)
    rendered = priced.order_json(order.id, order.status.value, order.customer_id, format_timestamp(created))
    assert rendered == order_json(order)
    doc = orjson.loads(rendered)
    assert doc["customer_id"] == "u-\u00fc" and doc["lines"][0]["name"] == 'Caf\u00e9 "quoted" \\ \n\u2028 \U0001f600'
    assert doc["cancel_reason"] is None and doc["refunded"] == "0.00" and doc["coupon"] == "C"
    later = replace(order, status=OrderStatus.CANCELED, cancel_reason=CancelReason.CUSTOMER, refunded=5)
    changed = orjson.loads(order_json(later, orjson.dumps({"reason": "customer"})))
    assert (changed["status"], changed["cancel_reason"], changed["refunded"]) == ("CANCELED", "customer", "0.05")
    assert list(changed)[-2:] == ["created_at", "change"] and changed["change"] == {"reason": "customer"}
    quote = orjson.loads(priced.quote_json())
    assert {k: v for k, v in orjson.loads(rendered).items() if k in quote} == quote
    assert (
        catalog.quote(b'{"currency":"EUR","items":[{"sku":"A-1","quantity":3},{"sku":"B","quantity":1}],"coupon":"C"}')
        == priced.quote_json()
    )


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (datetime(2026, 11, 21, 21, 29, 38, 123456, tzinfo=UTC), "2026-11-21T21:29:38.123Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T01:04:05.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59.999Z"),
        (datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC")), "1970-01-01T00:00:00.000Z"),
    ],
)
def test_timestamps_are_rfc3339_utc_milliseconds_with_four_digit_years(ts: datetime, text: str) -> None:
    assert format_timestamp(ts) == text
