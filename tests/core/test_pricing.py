"""The catalog pricer: exact line and order totals; price changes and unknown SKUs refused."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderfast import _core


@pytest.fixture
def catalog() -> _core.Catalog:
    c = _core.Catalog()
    c.upsert(
        [
            ("A", "Alpha", "USD", 9950, None, None),
            ("B", "Beta", "USD", 1, None, None),
            ("J", "Yen thing", "JPY", 100, None, None),
        ]
    )
    return c


def draft(items: list[tuple[str, int]], currency: str = "USD", expected: str | None = None) -> _core.OrderDraft:
    doc: dict[str, object] = {"currency": currency, "items": [{"sku": s, "quantity": q} for s, q in items]}
    if expected:
        doc["expected_total"] = expected
    return _core.parse_order(orjson.dumps(doc))


def test_prices_lines_and_totals(catalog: _core.Catalog) -> None:
    priced = catalog.price(draft([("A", 2), ("B", 3)], expected="199.03"))
    assert priced.currency == "USD"
    assert priced.lines == [
        ("A", "Alpha", 2, 9950, 19900, 0, 0, 19900, "0"),
        ("B", "Beta", 3, 1, 3, 0, 0, 3, "0"),
    ]
    assert (priced.subtotal, priced.total) == (19903, 19903)
    assert priced.format(priced.total) == "199.03"


def test_expected_total_mismatch(catalog: _core.Catalog) -> None:
    with pytest.raises(_core.PriceChangedError) as info:
        catalog.price(draft([("A", 1)], expected="99.00"))
    assert (info.value.currency, info.value.expected, info.value.actual) == ("USD", 9900, 9950)


def test_unknown_and_other_currency_skus(catalog: _core.Catalog) -> None:
    with pytest.raises(_core.ValidationError) as info:
        catalog.price(draft([("A", 1), ("NOPE", 1), ("J", 1)]))
    assert [(p, c) for p, c, _ in info.value.errors] == [
        ("/items/1/sku", "unknown_sku"),
        ("/items/2/sku", "currency_mismatch"),
    ]


def test_upsert_replaces_and_rejects_bad_rows(catalog: _core.Catalog) -> None:
    catalog.upsert([("A", "Alpha v2", "USD", 100, None, None)])
    assert catalog.price(draft([("A", 1)])).lines[0][1:5] == ("Alpha v2", 1, 100, 100)
    assert len(catalog) == 3 and "A" in catalog
    with pytest.raises(ValueError):
        catalog.upsert([("X", "x", "NOT", 1, None, None)])
    with pytest.raises(ValueError):
        catalog.upsert([("X", "x", "USD", -1, None, None)])
    assert "X" not in catalog


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 10_000)), min_size=1, max_size=20))
def test_agrees_with_decimal_arithmetic(lines: list[tuple[int, int]]) -> None:
    c = _core.Catalog()
    c.upsert([(f"S{i}", f"P{i}", "USD", price, None, None) for i, (price, _) in enumerate(lines)])
    priced = c.price(draft([(f"S{i}", q) for i, (_, q) in enumerate(lines)]))
    expected = sum(Decimal(p) / 100 * q for p, q in lines)
    assert Decimal(priced.format(priced.total)) == expected
