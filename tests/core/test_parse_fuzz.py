"""Hostile input, generated: whatever bytes arrive, parse_order returns a draft or raises
ValidationError — never another exception, a crash or a hang. A bounded run in every CI."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from orderfast import _core

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
keys = st.sampled_from(["currency", "items", "expected_total", "coupon", "sku", "quantity", "status", ""])
plausible_items = st.lists(
    st.dictionaries(keys, json_values | st.sampled_from(["SKU-1", 1, 0, -1, 10_001, "1", 1.5]), max_size=4),
    max_size=6,
)
plausible = st.fixed_dictionaries(
    {},
    optional={
        "currency": st.sampled_from(["USD", "JPY", "usd", "", 840]) | json_values,
        "items": plausible_items | json_values,
        "expected_total": st.sampled_from(["1.00", "1.001", "-1", "1e3", 1]) | json_values,
        "coupon": st.sampled_from(["SAVE", "bad code", ""]) | json_values,
    },
)


def check(body: bytes) -> None:
    try:
        draft = _core.parse_order(body)
    except _core.ValidationError as e:
        assert e.errors, "a refusal always says why"
        assert len(e.errors) <= 50
        for pointer, code, message in e.errors:
            assert pointer == "" or pointer.startswith("/")
            assert code and message
        return
    assert 1 <= len(draft.items) <= _core.MAX_ITEMS
    assert all(1 <= q <= _core.MAX_QUANTITY and _core.is_sku(s) for s, q in draft.items)
    assert _core.currency_exponent(draft.currency) is not None


@settings(max_examples=600, deadline=None)
@given(plausible)
def test_plausible_documents(doc: dict[str, object]) -> None:
    check(json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json(value: object) -> None:
    check(json.dumps(value).encode())


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_bodies(data: st.DataObject) -> None:
    body = bytearray(b'{"currency": "USD", "items": [{"sku": "SKU-1", "quantity": 2}], "expected_total": "199.00"}')
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if op == "flip":
            body[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            body.insert(pos, data.draw(st.sampled_from(b'{}[]",:0e-.\\\x00\xff')))
        elif len(body) > 1:
            del body[pos]
    check(bytes(body))


def test_pathological_shapes() -> None:
    for body in [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"items": [' + b"{}," * 5000 + b"{}]}",
        b'{"currency": "' + b"A" * 1_000_000 + b'"}',
        b'{"items": [{"quantity": 1' + b"0" * 5000 + b"}]}",
        b'{"currency": "USD", "currency": "USD", "items": [{"sku": "A", "quantity": 1}]}',
        b'{"currency": "\\ud800", "items": []}',
    ]:
        check(body)
