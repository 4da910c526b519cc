"""One rendering of an order: a new order's create response and the same order read back (and in
its events) are the same bytes, and every field reads back as JSON says it should."""

from __future__ import annotations

from dataclasses import replace

import orjson

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
        [("A-1", 'Caf\u00e9 "quoted" \\ \n\u2028 \U0001f600', "EUR", 1999, "std"), ("B", "b", "EUR", 5, None)]
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
