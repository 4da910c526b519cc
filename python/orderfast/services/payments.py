"""Payment provider webhooks: signatures checked the way Stripe signs, bodies validated.

``Orderfast-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` — several ``v1``
values may be sent, several secrets may be configured (rotation); any secret matching any value
is enough. The timestamp must be within the tolerance in both directions.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orderfast import _core
from orderfast.domain.text import storable
from orderfast.services.errors import InvalidInputError

TOLERANCE_SECONDS = 300
MAX_EVENT_ID_LEN = 255


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value a provider sends (also what tests and tools use to sign)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    header: str | None, body: bytes, secrets: Sequence[str], now: float, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    if not header or not secrets:
        return False
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and len(value) == 64:
            try:
                candidates.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    signed = f"{timestamp}.".encode() + body
    ok = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
        for candidate in candidates:
            # Constant time, and no early exit: every comparison is made.
            ok |= hmac.compare_digest(expected, candidate)
    return ok


@dataclass(frozen=True, slots=True)
class PaymentNotice:
    event_id: str
    order_id: str
    status: str  # "succeeded" | "failed"
    amount_text: str
    currency: str


def parse_notice(doc: Any) -> PaymentNotice:
    errors: list[tuple[str, str, str]] = []
    if not isinstance(doc, dict):
        raise InvalidInputError([("", "type", "the body must be a JSON object")])
    allowed = ("event_id", "order_id", "status", "amount", "currency")
    errors += [(f"/{k}", "unknown_field", "not part of a payment event") for k in doc if k not in allowed]
    event_id, order_id, status = doc.get("event_id"), doc.get("order_id"), doc.get("status")
    amount, currency = doc.get("amount"), doc.get("currency")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_EVENT_ID_LEN or not storable(event_id):
        errors.append(("/event_id", "invalid", f"a string of 1 to {MAX_EVENT_ID_LEN} characters, without U+0000"))
    if not isinstance(order_id, str) or not _core.is_order_id(order_id):
        errors.append(("/order_id", "invalid", "an order id"))
    if status not in ("succeeded", "failed"):
        errors.append(("/status", "invalid", 'either "succeeded" or "failed"'))
    if not isinstance(currency, str) or _core.currency_exponent(currency) is None:
        errors.append(("/currency", "invalid_currency", "an active ISO 4217 code"))
    if not isinstance(amount, str):
        errors.append(("/amount", "type", 'a decimal string such as "199.00"'))
    if errors:
        raise InvalidInputError(errors)
    assert isinstance(event_id, str) and isinstance(order_id, str) and isinstance(status, str)
    assert isinstance(amount, str) and isinstance(currency, str)
    return PaymentNotice(event_id, order_id, status, amount, currency)
