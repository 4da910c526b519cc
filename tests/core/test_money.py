"""Money at the boundary: decimal strings ⇄ integer minor units, per ISO 4217 exponent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderfast import _core


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("199.00", "USD", 19900), ("0.5", "EUR", 50), ("100", "JPY", 100), ("1.234", "KWD", 1234)],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert _core.parse_amount(text, currency) == minor
    assert _core.format_amount(minor, currency) == str(
        Decimal(text).quantize(Decimal(1).scaleb(-(_core.currency_exponent(currency) or 0)))
    )


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("100.5", "JPY"),
        ("1.001", "USD"),
        ("1e2", "USD"),
        ("-1", "USD"),
        ("", "USD"),
        ("1", "ABC"),
        ("99999999999999999999", "USD"),
    ],
)
def test_parse_amount_refuses_rather_than_rounds(text: str, currency: str) -> None:
    with pytest.raises(ValueError):
        _core.parse_amount(text, currency)


def test_exponents() -> None:
    assert _core.currency_exponent("USD") == 2
    assert _core.currency_exponent("JPY") == 0
    assert _core.currency_exponent("BHD") == 3
    assert _core.currency_exponent("usd") is None


@given(st.integers(min_value=0, max_value=2**63 - 1), st.sampled_from(["USD", "JPY", "KWD", "CLF"]))
def test_format_then_parse_is_identity(minor: int, currency: str) -> None:
    text = _core.format_amount(minor, currency)
    assert _core.parse_amount(text, currency) == minor
    exp = _core.currency_exponent(currency) or 0
    assert Decimal(text) == Decimal(minor).scaleb(-exp)
