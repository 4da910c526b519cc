"""Order qualification: what an administrator allows one customer to order. No I/O.

The Rust pricer applies a customer's restrictions to each of their orders from the catalog
snapshot, before any stock is touched: blocked (403), the largest order total per currency (422
``order_value_limit``). The cap on unpaid orders (422 ``open_orders_limit``) is enforced by the
store, where the count is exact under concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderfast import _core
from orderfast.domain.orders import format_timestamp


@dataclass(frozen=True, slots=True)
class RestrictionsSpec:
    customer_id: str
    blocked: bool = False
    max_order_value: tuple[tuple[str, int], ...] = ()  # (currency, minor units), sorted by currency
    max_open_orders: int | None = None

    @property
    def lifted(self) -> bool:
        """Nothing restricted: the snapshot forgets the customer."""
        return not self.blocked and not self.max_order_value and self.max_open_orders is None


@dataclass(frozen=True, slots=True)
class Restrictions:
    spec: RestrictionsSpec
    version: int  # catalog version of the last change
    updated_at: datetime


def restrictions_document(r: Restrictions) -> dict[str, Any]:
    s = r.spec
    return {
        "customer_id": s.customer_id,
        "blocked": s.blocked,
        "max_order_value": {c: _core.format_amount(v, c) for c, v in s.max_order_value},
        "max_open_orders": s.max_open_orders,
        "updated_at": format_timestamp(r.updated_at),
    }
