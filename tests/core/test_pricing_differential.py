"""The Rust pricer against the plain-Python reference (tests/reference_pricer.py), on random
catalogs, promotions, coupons, tax tables and orders: every amount must agree."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderfast import _core
from tests.reference_pricer import RefCoupon, RefProduct, RefPromotion, price

SKUS = [f"S{i}" for i in range(8)]
percents = st.builds(
    lambda whole, frac, digits: f"{whole}.{frac:0{digits}d}" if digits else str(whole),
    st.integers(0, 60),
    st.integers(0, 999),
    st.sampled_from([0, 3]),
)
rates = st.builds(lambda w, f: f"{w}.{f:02d}" if f else str(w), st.integers(0, 30), st.integers(0, 99))


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    products = {
        sku: RefProduct(draw(st.integers(0, 10**7)), draw(st.sampled_from([None, "a", "b", "missing"]))) for sku in SKUS
    }
    skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=6, unique=True))
    items = [(s, draw(st.integers(1, 50))) for s in skus]
    promotions = draw(
        st.lists(
            st.builds(
                RefPromotion,
                st.frozensets(st.sampled_from(SKUS), min_size=1),
                percents.filter(lambda p: float(p) > 0),
                st.integers(1, 4),
            ),
            max_size=3,
        )
    )
    coupon = draw(
        st.none()
        | st.builds(
            RefCoupon,
            percent=percents.filter(lambda p: float(p) > 0),
            skus=st.none() | st.frozensets(st.sampled_from(SKUS), min_size=1),
        )
        | st.builds(
            RefCoupon, amount=st.integers(1, 10**8), skus=st.none() | st.frozensets(st.sampled_from(SKUS), min_size=1)
        )
    )
    return {
        "products": products,
        "items": items,
        "promotions": promotions,
        "coupon": coupon,
        "rates": {"a": draw(rates), "b": draw(rates)},
        "inclusive": draw(st.booleans()),
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_rust_and_reference_agree_on_every_amount(sc: dict[str, object]) -> None:
    products: dict[str, RefProduct] = sc["products"]  # type: ignore[assignment]
    items: list[tuple[str, int]] = sc["items"]  # type: ignore[assignment]
    promotions: list[RefPromotion] = sc["promotions"]  # type: ignore[assignment]
    coupon: RefCoupon | None = sc["coupon"]  # type: ignore[assignment]
    rates: dict[str, str] = sc["rates"]  # type: ignore[assignment]
    inclusive: bool = sc["inclusive"]  # type: ignore[assignment]

    catalog = _core.Catalog()
    catalog.upsert([(s, s, "USD", p.price, p.tax_class, None) for s, p in products.items()])
    catalog.set_tax(rates, inclusive)
    catalog.upsert_promotions(
        [(f"P{i}", sorted(p.skus), p.percent, p.min_quantity, None, None) for i, p in enumerate(promotions)]
    )
    body: dict[str, object] = {"currency": "USD", "items": [{"sku": s, "quantity": q} for s, q in items]}
    if coupon is not None:
        catalog.upsert_coupons(
            [
                (
                    "REF",
                    "USD",
                    coupon.percent,
                    coupon.amount,
                    None,
                    None if coupon.skus is None else sorted(coupon.skus),
                    None,
                    None,
                    0,
                )
            ]
        )
        body["coupon"] = "REF"
    expected = price(products, items, promotions, coupon, rates, inclusive)
    draft = _core.parse_order(orjson.dumps(body))
    if expected is None:
        with pytest.raises(_core.ValidationError) as info:
            catalog.price(draft)
        assert info.value.errors[0][1] == "coupon_not_applicable"
        return
    priced = catalog.price(draft)
    got = [(sub, disc, tax, total) for _s, _n, _q, _u, sub, disc, tax, total, _r in priced.lines]
    assert got == [(ln.subtotal, ln.discount, ln.tax, ln.total) for ln in expected]
    assert priced.subtotal == sum(ln.subtotal for ln in expected)
    assert priced.discount == sum(ln.discount for ln in expected)
    assert priced.tax == sum(ln.tax for ln in expected)
    assert priced.total == sum(ln.total for ln in expected)
