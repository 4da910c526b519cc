"""orderfast's compiled core (Rust, PyO3): validation, exact pricing, rate limiting, idempotency.

Amounts are always integers in the currency's minor unit (ISO 4217 exponent); decimal strings
only at the edges (``parse_amount`` / ``format_amount``). Every class is safe to share between
threads.
"""

from typing import Any, Self, final

__all__ = [
    "MAX_ITEMS",
    "MAX_QUANTITY",
    "MAX_SKU_LEN",
    "Catalog",
    "CustomerBlockedError",
    "IdempotencyError",
    "IdempotencyMap",
    "KeyInFlightError",
    "KeyMismatchError",
    "OrderDraft",
    "PriceChangedError",
    "PricedOrder",
    "RateDecision",
    "RateLimitPolicies",
    "RateLimiter",
    "Replay",
    "ValidationError",
    "currencies",
    "currency_exponent",
    "fingerprint",
    "format_amount",
    "is_coupon_code",
    "is_order_id",
    "is_sku",
    "new_order_id",
    "parse_amount",
    "parse_order",
    "parse_percent",
    "render_order",
]

MAX_ITEMS: int
"""Most lines one order may carry."""
MAX_QUANTITY: int
"""Largest quantity of one line."""
MAX_SKU_LEN: int
"""Longest SKU."""

class ValidationError(ValueError):
    """A request body is not valid.

    ``errors`` lists every problem found as (JSON pointer, code, message). ``malformed`` is True
    when the body was not JSON at all (then ``errors`` holds one entry at pointer ``""``).
    ``catalog`` is True when the body was valid and the catalog refused it (an unknown SKU, a
    coupon's rules): a newer catalog snapshot may answer otherwise; a body refused before pricing
    stays refused.
    """

    errors: list[tuple[str, str, str]]
    malformed: bool
    catalog: bool

class PriceChangedError(ValueError):
    """The client's ``expected_total`` is not what the order costs now (minor units)."""

    currency: str
    expected: int
    actual: int

class IdempotencyError(Exception):
    """Base of the idempotency-key conflicts."""

class CustomerBlockedError(Exception):
    """The customer's restrictions say they may not place orders (403)."""

class KeyInFlightError(IdempotencyError):
    """Another request with this key is still being processed."""

class KeyMismatchError(IdempotencyError):
    """The key was already used with a different request body."""

@final
class OrderDraft:
    """A syntactically valid create-order request: nothing looked up or priced yet."""

    @property
    def currency(self) -> str: ...
    @property
    def items(self) -> list[tuple[str, int]]:
        """(sku, quantity) in request order; SKUs are unique."""
    @property
    def expected_total(self) -> int | None:
        """The total the client expects, in minor units, if it said."""
    @property
    def coupon(self) -> str | None:
        """The coupon code, upper-cased, if the client named one."""

def parse_order(body: bytes) -> OrderDraft:
    """Validates a create-order JSON body straight from bytes.

    Raises ValidationError carrying every field error at once.
    """

def parse_amount(text: str, currency: str) -> int:
    """Decimal string → minor units of ``currency``. ValueError on bad syntax, more decimals
    than the currency has, overflow, or an unknown currency. Never rounds."""

def format_amount(minor: int, currency: str) -> str:
    """Minor units → decimal string with exactly the currency's number of decimals."""

def currencies() -> list[str]:
    """Every active ISO 4217 code, sorted."""

def currency_exponent(currency: str) -> int | None:
    """The ISO 4217 minor-unit exponent, or None for a code that is not an active currency."""

def new_order_id() -> str:
    """A new UUIDv7, canonical form; increasing within the process."""

def is_order_id(text: str) -> bool:
    """Whether ``text`` is a canonical lower-case hyphenated UUID."""

def is_sku(text: str) -> bool:
    """Whether ``text`` is a valid SKU (1..MAX_SKU_LEN of A-Z a-z 0-9 . _ -)."""

def is_coupon_code(text: str) -> bool:
    """Whether ``text`` is a valid coupon code (1..64 of A-Z a-z 0-9 _ -)."""

def parse_percent(text: str) -> int:
    """A percentage string (``"15"``, ``"5.5"``, at most 6 decimals) → millionths of a percent.
    ValueError when it is not exact."""

def fingerprint(body: bytes) -> bytes:
    """SHA-256 of a request body: the idempotency fingerprint (32 bytes)."""

def render_order(order: Any, created_at: str, change: bytes | None = None) -> bytes:
    """The order document as JSON bytes, rendered by the same code as ``PricedOrder.order_json``.

    ``order`` is read by attribute, as ``orderfast.domain.orders.Order`` has them (id, customer_id,
    status, currency, lines of ``OrderLine``, subtotal, discount, tax, total, coupon, tax_inclusive,
    cancel_reason, refunded); ``created_at`` is already formatted; ``change``, when given, is the JSON
    of a ``"change"`` member added last (a transition event's details). ValueError on an unknown
    currency."""

@final
class PricedOrder:
    """An order priced from the catalog snapshot; amounts in minor units of ``currency``.

    Line amounts always sum to the order amounts; ``total = subtotal - discount + tax`` with
    exclusive tax, ``total = subtotal - discount`` with inclusive tax.
    """

    @property
    def currency(self) -> str: ...
    @property
    def open_orders_cap(self) -> int | None:
        """The customer's cap on unpaid orders (their restrictions), for the store to enforce."""
    @property
    def lines(self) -> list[tuple[str, str, int, int, int, int, int, int, str]]:
        """(sku, name, quantity, unit_price, subtotal, discount, tax, total, tax_rate) per line,
        in request order; tax_rate is a percentage string."""
    @property
    def subtotal(self) -> int: ...
    @property
    def discount(self) -> int: ...
    @property
    def tax(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def coupon(self) -> str | None: ...
    @property
    def tax_inclusive(self) -> bool: ...
    def format(self, minor: int) -> str:
        """Formats minor units of this order's currency."""
    def quote_json(self) -> bytes:
        """The quote document as JSON bytes."""
    def order_json(self, id: str, status: str, customer_id: str, created_at: str) -> bytes:
        """The order document as JSON bytes (the same fields, in the same order, as the API's
        order representation)."""

@final
class Catalog:
    """This process's catalog snapshot: products, coupons, automatic promotions, tax table."""

    def __init__(self) -> None: ...
    def upsert(self, products: list[tuple[str, str, str, int, str | None, int | None]]) -> None:
        """Inserts or replaces (sku, name, currency, unit_price_minor, tax_class, max_per_order) atomically."""
    def set_restrictions(self, rows: list[tuple[str, bool, dict[str, int], int | None]]) -> None:
        """Sets customers' restrictions: (customer, blocked, {currency: max_order_minor}, max_open_orders)."""
    def lift_restrictions(self, customers: list[str]) -> None:
        """Lifts every restriction of these customers."""
    def upsert_coupons(
        self,
        coupons: list[
            tuple[str, str, str | None, int | None, int | None, list[str] | None, int | None, int | None, int]
        ],
    ) -> None:
        """Inserts or replaces (code, currency, percent_off, amount_off, min_subtotal, skus,
        expires_at_unix, max_redemptions, redemptions); exactly one of percent_off/amount_off."""
    def upsert_promotions(self, promotions: list[tuple[str, list[str], str, int, int | None, int | None]]) -> None:
        """Inserts or replaces (id, skus, percent_off, min_quantity, starts_at_unix, ends_at_unix)."""
    def set_coupons_enabled(self, enabled: bool) -> None:
        """Coupons on (the default) or off: off, an order naming a coupon is refused."""
    def set_tax(self, rates: dict[str, str], inclusive: bool) -> None:
        """Tax class → rate (percentage string); ``inclusive`` when prices include tax."""
    def tax_classes(self) -> list[str]:
        """The tax classes the products name, sorted (a new tax table must keep them)."""
    def remove(self, sku: str) -> bool: ...
    def __len__(self) -> int: ...
    def __contains__(self, sku: str, /) -> bool: ...
    def quote(self, body: bytes, now: int | None = None, customer: str | None = None) -> bytes:
        """parse_order + price + quote_json in one call: body bytes in, JSON bytes out. Raises
        what parse_order and price raise (with ``customer``: their restrictions, as for an order)."""
    def price(self, draft: OrderDraft, now: int | None = None, customer: str | None = None) -> PricedOrder:
        """Prices a draft at ``now`` (Unix seconds; default: the system clock). Raises
        ValidationError (unknown SKU, other currency, overflow, a SKU's per-order limit, coupon
        refusals at /coupon) or PriceChangedError (expected_total differs). With ``customer`` (an
        order), their restrictions apply: CustomerBlockedError, or ValidationError
        ``order_value_limit`` at /items."""

@final
class RateDecision:
    """One limiter decision: what the RateLimit and Retry-After headers need."""

    @property
    def policy(self) -> str:
        """The policy's name ("" for a lone RateLimiter)."""
    @property
    def allowed(self) -> bool: ...
    @property
    def remaining(self) -> int:
        """Requests of cost 1 still admissible right now."""
    @property
    def reset(self) -> float:
        """Seconds until the bucket is full again."""
    @property
    def retry_after(self) -> float:
        """Seconds until this request would be admitted (0 when allowed)."""

@final
class RateLimiter:
    """Keyed token bucket (GCRA): ``quota`` per ``period`` seconds, bursts up to ``burst``.

    Sharded and thread-safe; idle keys are evicted without changing any decision.
    """

    def __new__(cls, quota: int, period: float, burst: int, max_keys: int = 100_000) -> Self: ...
    @property
    def quota(self) -> int: ...
    @property
    def period(self) -> float: ...
    @property
    def burst(self) -> int: ...
    def acquire(self, key: str, cost: int = 1, now_ns: int | None = None) -> RateDecision:
        """Takes ``cost`` tokens for ``key``; ``now_ns`` injects the clock (tests)."""
    def __len__(self) -> int: ...

@final
class RateLimitPolicies:
    """Several named limits (say "user" and "ip") checked together for one request: tokens are
    taken from every policy or from none. Thread-safe; shards are locked in policy order."""

    def __new__(cls, policies: list[tuple[str, int, float, int]], max_keys: int = 100_000) -> Self:
        """``policies``: (name, quota, period_seconds, burst) each."""
    @property
    def names(self) -> list[str]: ...
    def adopt(self, old: RateLimitPolicies, now_ns: int | None = None) -> None:
        """Carries over what clients have spent under ``old`` (the set these replace on a reload)
        for every policy of the same name; a new name starts with full buckets."""
    def acquire(self, keys: list[str | None], cost: int = 1, now_ns: int | None = None) -> list[RateDecision | None]:
        """One decision per policy, None where ``keys`` has None (the policy does not apply)."""

@final
class Replay:
    """A stored response to send again, byte for byte."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...
    @property
    def body(self) -> bytes: ...

@final
class IdempotencyMap:
    """Sharded, TTL- and size-bounded map: idempotency key → in flight | completed response.

    The fast path in front of the database record, never the only guard.
    """

    def __new__(
        cls, ttl: float = 3600.0, in_flight_ttl: float = 60.0, capacity: int = 100_000, max_bytes: int = 16 << 20
    ) -> Self:
        """At most about ``capacity`` entries and ``max_bytes`` bytes; completed entries live
        ``ttl`` seconds, in-flight claims ``in_flight_ttl``."""
    @property
    def nbytes(self) -> int:
        """Bytes held: keys, responses and a per-entry overhead."""
    def begin(self, key: str, fingerprint: bytes, now_ns: int | None = None) -> Replay | None:
        """None: the caller owns the key until complete/abandon. Replay: answer with it.

        Raises KeyInFlightError or KeyMismatchError.
        """
    def complete(
        self,
        key: str,
        fingerprint: bytes,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        now_ns: int | None = None,
    ) -> None:
        """Records the response for a key this caller began."""
    def abandon(self, key: str) -> None:
        """Releases an in-flight claim without a response."""
    def __len__(self) -> int: ...
