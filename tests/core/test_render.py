"""The Rust-rendered order and quote JSON matches the Python representation byte for byte."""

from __future__ import annotations

import orjson

from orderfast import _core
from orderfast.domain.orders import Order, OrderLine, OrderStatus, format_timestamp, order_document, utc_now_ms


def test_rust_order_json_equals_the_python_document() -> None:
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
    order = Order(
        id=_core.new_order_id(),
        customer_id="u-\u00fc",
        status=OrderStatus.PENDING_PAYMENT,
        currency=priced.currency,
        lines=tuple(OrderLine(s, n, q, u, d, t, tot, r) for s, n, q, u, _sub, d, t, tot, r in priced.lines),
        subtotal=priced.subtotal,
        discount=priced.discount,
        tax=priced.tax,
        total=priced.total,
        coupon=priced.coupon,
        tax_inclusive=priced.tax_inclusive,
        created_at=created,
    )
    rendered = priced.order_json(order.id, order.status.value, order.customer_id, format_timestamp(created))
    assert rendered == orjson.dumps(order_document(order))
    quote = orjson.loads(priced.quote_json())
    assert {k: v for k, v in orjson.loads(rendered).items() if k in quote} == quote
    assert (
        catalog.quote(b'{"currency":"EUR","items":[{"sku":"A-1","quantity":3},{"sku":"B","quantity":1}],"coupon":"C"}')
        == priced.quote_json()
    )
