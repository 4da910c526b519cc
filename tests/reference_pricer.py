"""A plain-Python reference pricer: the documented rules, written the obvious way with ``decimal``.

It exists to be compared with the Rust core (tests/core/test_pricing_differential.py); it shares no
code with it. Amounts are integers in minor units; percentages are decimal strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

CTX = Context(prec=80)


def half_even(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=CTX))


def floor(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_FLOOR, context=CTX))


@dataclass(frozen=True)
class RefProduct:
    price: int
    tax_class: str | None = None


@dataclass(frozen=True)
class RefPromotion:
    skus: frozenset[str]
    percent: str
    min_quantity: int = 1


@dataclass(frozen=True)
class RefCoupon:
    percent: str | None = None
    amount: int | None = None
    skus: frozenset[str] | None = None


@dataclass(frozen=True)
class RefLine:
    subtotal: int
    discount: int
    tax: int
    total: int


def allocate(total: int, weights: list[int]) -> list[int]:
    whole = sum(weights)
    if whole == 0:
        return [total] + [0] * (len(weights) - 1)
    exact = [Decimal(total) * w / whole for w in weights]
    shares = [floor(e) for e in exact]
    left = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def price(
    products: dict[str, RefProduct],
    items: list[tuple[str, int]],
    promotions: list[RefPromotion],
    coupon: RefCoupon | None,
    rates: dict[str, str],
    inclusive: bool,
) -> list[RefLine] | None:
    """Line amounts, or None when the coupon would be refused as not applicable."""
    subtotals = [products[s].price * q for s, q in items]
    discounts = []
    for (sku, qty), sub in zip(items, subtotals, strict=True):
        best = max(
            (Decimal(p.percent) for p in promotions if sku in p.skus and qty >= p.min_quantity), default=Decimal(0)
        )
        discounts.append(half_even(Decimal(sub) * min(best, Decimal(100)) / 100))
    if coupon is not None:
        eligible = [i for i, (s, _) in enumerate(items) if coupon.skus is None or s in coupon.skus]
        bases = [subtotals[i] - discounts[i] for i in eligible]
        base = sum(bases)
        if not eligible or base == 0:
            return None
        if coupon.percent is not None:
            amount = half_even(Decimal(base) * min(Decimal(coupon.percent), Decimal(100)) / 100)
        else:
            assert coupon.amount is not None
            amount = min(coupon.amount, base)
        for i, share in zip(eligible, allocate(amount, bases), strict=True):
            discounts[i] += share
    lines = []
    for (sku, _), sub, disc in zip(items, subtotals, discounts, strict=True):
        net = sub - disc
        rate = Decimal(rates.get(products[sku].tax_class or "", "0")) if products[sku].tax_class else Decimal(0)
        if inclusive:
            tax = half_even(Decimal(net) * rate / (100 + rate))
            total = net
        else:
            tax = half_even(Decimal(net) * rate / 100)
            total = net + tax
        lines.append(RefLine(sub, disc, tax, total))
    return lines
