"""Which reads may go to a read replica, and how a client reads its own writes there.

A write's *position* is the primary's WAL position once it has committed (PostgreSQL's LSN, shown
as ``16/B374D848``). A client is told it after every write it makes (the ``Orderfast-Read-After``
response header and a cookie of the same name, ``orderfast_read_after``); a read that carries it
goes only to a replica that has replayed at least that far, else to the primary. So a client that
writes then reads sees its write, on any instance, without every read paying for the primary.

Reads are routed only where the HTTP layer says so — ``GET``/``HEAD`` requests, through
``READ_AFTER``; everything else (a decision inside a write, a replay of a payment, the catalog
snapshot, the feed) reads the primary.
"""

from __future__ import annotations

from contextvars import ContextVar

# None: this read goes to the primary. An int: it may go to a replica that has replayed this far.
READ_AFTER: ContextVar[int | None] = ContextVar("orderfast_read_after", default=None)

HEADER = "orderfast-read-after"
COOKIE = "orderfast_read_after"
_HEX = frozenset("0123456789abcdefABCDEF")


def parse_position(text: str) -> int | None:
    """``16/B374D848`` → its integer; None unless it is one (two hex fields of at most 8 digits)."""
    high, sep, low = text.strip().partition("/")
    if not sep or not 0 < len(high) <= 8 or not 0 < len(low) <= 8 or not _HEX.issuperset(high + low):
        return None
    return (int(high, 16) << 32) | int(low, 16)


def format_position(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"
