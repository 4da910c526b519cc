"""parse + validate + price of a 5-line order with a coupon and tax: the Rust core against the way a
typical Python service does it (orjson + pydantic models + decimal). Compare within one run."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, Field

from orderfast import _core

BODY = orjson.dumps(
    {
        "currency": "USD",
        "items": [{"sku": f"SKU-{i}", "quantity": i + 1} for i in range(5)],
        "coupon": "SAVE10",
    }
)
CENT = Decimal("0.01")
CATALOG = {f"SKU-{i}": (f"Product {i}", Decimal("19.99") + i, "standard" if i % 2 else "reduced") for i in range(1000)}
RATES = {"standard": Decimal("20"), "reduced": Decimal("5.5")}
COUPONS = {"SAVE10": Decimal("10")}


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sku: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    quantity: Annotated[int, Field(ge=1, le=10_000, strict=True)]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[Item], Field(min_length=1, max_length=100)]
    expected_total: Decimal | None = None
    coupon: str | None = None


def python_price(body: bytes) -> dict[str, Any]:
    order = OrderIn.model_validate(orjson.loads(body))
    lines = []
    for item in order.items:
        name, unit, tax_class = CATALOG[item.sku]
        lines.append(
            {
                "sku": item.sku,
                "name": name,
                "quantity": item.quantity,
                "unit": unit,
                "subtotal": unit * item.quantity,
                "tax_class": tax_class,
            }
        )
    subtotal = sum((ln["subtotal"] for ln in lines), Decimal(0))
    discount = Decimal(0)
    if order.coupon is not None:
        discount = (subtotal * COUPONS[order.coupon] / 100).quantize(CENT, rounding=ROUND_HALF_EVEN)
    # Largest remainder in cents.
    exact = [discount * ln["subtotal"] / subtotal for ln in lines]
    shares = [e.quantize(CENT, rounding=ROUND_FLOOR) for e in exact]
    left = int((discount - sum(shares)) / CENT)
    for i in sorted(range(len(lines)), key=lambda i: (-(exact[i] - shares[i]), i))[:left]:
        shares[i] += CENT
    tax_total = total = Decimal(0)
    for ln, share in zip(lines, shares, strict=True):
        net = ln["subtotal"] - share
        tax = (net * RATES[ln["tax_class"]] / 100).quantize(CENT, rounding=ROUND_HALF_EVEN)
        ln.update(discount=share, tax=tax, total=net + tax)
        tax_total += tax
        total += net + tax
    return {"lines": lines, "subtotal": subtotal, "discount": discount, "tax": tax_total, "total": total}


@pytest.fixture(scope="module")
def catalog() -> _core.Catalog:
    c = _core.Catalog()
    c.upsert([(sku, name, "USD", int(price * 100), cls, None) for sku, (name, price, cls) in CATALOG.items()])
    c.set_tax({k: str(v) for k, v in RATES.items()}, False)
    c.upsert_coupons([("SAVE10", "USD", "10", None, None, None, None, None, 0)])
    return c


def rust_price(catalog: _core.Catalog, body: bytes) -> _core.PricedOrder:
    priced = catalog.price(_core.parse_order(body))
    priced.lines  # materialise the lines as Python objects, as the Python version does  # noqa: B018
    return priced


@pytest.mark.benchmark(group="order: parse+validate+price, 5 lines, coupon, tax")
def test_rust_core(benchmark: Any, catalog: _core.Catalog) -> None:
    priced = benchmark(rust_price, catalog, BODY)
    reference = python_price(BODY)
    assert Decimal(priced.format(priced.total)) == reference["total"]
    assert Decimal(priced.format(priced.discount)) == reference["discount"]
    assert Decimal(priced.format(priced.tax)) == reference["tax"]


@pytest.mark.benchmark(group="order: parse+validate+price, 5 lines, coupon, tax")
def test_python_pydantic_decimal(benchmark: Any) -> None:
    assert benchmark(python_price, BODY)["discount"] > 0


def python_quote(body: bytes) -> bytes:
    """The whole quote as a typical service answers it: validate, price, serialise."""
    priced = python_price(body)
    money = ("unit", "subtotal", "discount", "tax", "total")
    return orjson.dumps(
        {
            "currency": "USD",
            "lines": [{k: (str(v) if k in money else v) for k, v in ln.items()} for ln in priced["lines"]],
            **{k: str(priced[k]) for k in ("subtotal", "discount", "tax", "total")},
        }
    )


@pytest.mark.benchmark(group="quote: body bytes in, JSON bytes out")
def test_rust_core_quote(benchmark: Any, catalog: _core.Catalog) -> None:
    out = benchmark(catalog.quote, BODY)
    assert orjson.loads(out)["total"] == orjson.loads(python_quote(BODY))["total"]


@pytest.mark.benchmark(group="quote: body bytes in, JSON bytes out")
def test_python_pydantic_decimal_orjson_quote(benchmark: Any) -> None:
    assert benchmark(python_quote, BODY)
