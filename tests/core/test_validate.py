"""parse_order as Python sees it: typed drafts, one ValidationError with every field error."""

from __future__ import annotations

import pytest

from orderfast import _core


def test_valid_body_becomes_a_typed_draft() -> None:
    draft = _core.parse_order(
        b'{"currency": "USD", "items": [{"sku": "SKU-1", "quantity": 2}], "expected_total": "199.00"}'
    )
    assert draft.currency == "USD"
    assert draft.items == [("SKU-1", 2)]
    assert draft.expected_total == 19900


def test_every_field_error_is_reported_at_once() -> None:
    with pytest.raises(_core.ValidationError) as info:
        _core.parse_order(b'{"currency": "XXX", "items": [{"sku": "A", "quantity": 0}, {"sku": 5}], "total": "1"}')
    err = info.value
    assert isinstance(err, ValueError)
    assert err.malformed is False
    assert [(p, c) for p, c, _ in err.errors] == [
        ("/currency", "invalid_currency"),
        ("/items/0/quantity", "out_of_range"),
        ("/items/1/sku", "type"),
        ("/items/1/quantity", "required"),
        ("/total", "unknown_field"),
    ]
    assert all(message for _, _, message in err.errors)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b"\xff\xfe{}", b'{"a": NaN}', b'{"currency": 1e309}', b"[" * 5000],
)
def test_malformed_bodies_are_flagged_malformed(body: bytes) -> None:
    with pytest.raises(_core.ValidationError) as info:
        _core.parse_order(body)
    assert info.value.malformed is True
    assert info.value.errors[0][:2] == ("", "malformed_json")


@pytest.mark.parametrize(
    ("body", "pointer", "code"),
    [
        (b"[]", "", "type"),
        (b'{"currency": "USD", "items": []}', "/items", "too_short"),
        (
            b'{"currency": "USD", "items": [{"sku": "A", "quantity": "2"}]}',
            "/items/0/quantity",
            "type",
        ),
        (
            b'{"currency": "USD", "items": [{"sku": "A", "quantity": 2.0}]}',
            "/items/0/quantity",
            "type",
        ),
        (
            b'{"currency": "USD", "items": [{"sku": "A", "quantity": -1}]}',
            "/items/0/quantity",
            "out_of_range",
        ),
        (
            b'{"currency": "USD", "items": [{"sku": "A b", "quantity": 1}]}',
            "/items/0/sku",
            "invalid_sku",
        ),
        (
            b'{"currency": "JPY", "items": [{"sku": "A", "quantity": 1}], "expected_total": "1.5"}',
            "/expected_total",
            "invalid_amount",
        ),
        (
            b'{"currency": "USD", "items": [{"sku": "A", "quantity": 1}], "expected_total": 1.5}',
            "/expected_total",
            "type",
        ),
    ],
)
def test_single_field_errors(body: bytes, pointer: str, code: str) -> None:
    with pytest.raises(_core.ValidationError) as info:
        _core.parse_order(body)
    assert [(p, c) for p, c, _ in info.value.errors] == [(pointer, code)]


def test_limits_are_exported() -> None:
    assert _core.MAX_ITEMS == 100
    assert _core.MAX_QUANTITY == 10_000
    assert _core.MAX_SKU_LEN == 64
    assert _core.is_sku("SKU-1.a_b")
    assert not _core.is_sku("x" * 65)
