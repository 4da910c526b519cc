"""The request budget (``ORDERFAST_REQUEST_TIMEOUT``): how long one request may spend waiting on
the database and Redis, all calls together.

The HTTP layer starts the clock when a request arrives (:func:`start`); every store call then takes
what is left (:func:`remaining`) for its pool wait, its statements and giving its connection back.
Work with no request behind it — a group-commit batch, the relay, the sweeper, a CLI command —
gets a whole budget per call. The clock is the event loop's (``loop.time()``), which is what
``asyncio.timeout_at`` and asyncpg's timeouts count in.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token

# Seconds; None: no budget (migrations, reconcile: long by nature). Set once per process (bootstrap).
BUDGET: float | None = 5.0

# The current request's deadline, in loop time; None outside a request.
DEADLINE: ContextVar[float | None] = ContextVar("orderfast_deadline", default=None)


def configure(budget: float | None) -> None:
    global BUDGET
    BUDGET = budget


def start() -> Token[float | None] | None:
    """Starts the current request's clock (None when there is no budget): reset the token after."""
    if BUDGET is None:
        return None
    return DEADLINE.set(asyncio.get_running_loop().time() + BUDGET)


def reset(token: Token[float | None] | None) -> None:
    if token is not None:
        DEADLINE.reset(token)


def deadline(*, fresh: bool = False) -> float | None:
    """When the current call must be done, in loop time: the request's deadline, or a whole
    budget from now outside a request (or when ``fresh``: work done for many requests at once)."""
    if BUDGET is None:
        return None
    when = None if fresh else DEADLINE.get()
    return when if when is not None else asyncio.get_running_loop().time() + BUDGET


def remaining(when: float | None) -> float | None:
    """Seconds left until ``when`` (never below zero); None for no deadline."""
    if when is None:
        return None
    return max(0.0, when - asyncio.get_running_loop().time())
