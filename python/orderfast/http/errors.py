"""The one table that maps exceptions to problem responses."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from orderfast import _core
from orderfast.http.problems import Problem, store_unavailable
from orderfast.http.request import body_unreadable
from orderfast.services.errors import (
    ConflictError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    OutOfStockError,
)
from orderfast.store.base import StoreUnavailable

log = logging.getLogger("orderfast.http")

# Coroutine functions, every one: Starlette runs a plain function in its worker-thread pool, a
# thread hop for each problem it answers.
Handler = Callable[[Request, Exception], Awaitable[Response]]


def _validation(exc: Exception, method: str, path: str) -> Problem:
    assert isinstance(exc, _core.ValidationError)
    if exc.malformed:
        return Problem(400, "malformed-json", "Malformed JSON", exc.errors[0][2])
    return Problem(422, "validation-error", "Invalid request", str(exc), errors=exc.errors)


def _invalid_input(exc: Exception, method: str, path: str) -> Problem:
    assert isinstance(exc, InvalidInputError)
    return Problem(422, "validation-error", "Invalid request", str(exc), errors=exc.errors)


def _price_changed(exc: Exception, method: str, path: str) -> Problem:
    assert isinstance(exc, _core.PriceChangedError)
    fmt = _core.format_amount
    return Problem(
        409,
        "price-changed",
        "Price changed",
        f"the order now costs {fmt(exc.actual, exc.currency)} {exc.currency}, not {fmt(exc.expected, exc.currency)}",
        extra={
            "expected_total": fmt(exc.expected, exc.currency),
            "current_total": fmt(exc.actual, exc.currency),
            "currency": exc.currency,
        },
    )


def _out_of_stock(exc: Exception, method: str, path: str) -> Problem:
    assert isinstance(exc, OutOfStockError)
    return Problem(409, "out-of-stock", "Out of stock", str(exc), extra={"sku": exc.sku})


def _blocked(exc: Exception, method: str, path: str) -> Problem:
    return Problem(403, "customer-blocked", "Customer blocked", "this customer may not place orders; ask the shop")


def _in_flight(exc: Exception, method: str, path: str) -> Problem:
    return Problem(
        409,
        "idempotency-key-in-use",
        "Request in progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"retry-after": "1"},
    )


def _mismatch(exc: Exception, method: str, path: str) -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "this Idempotency-Key was already used with a different request body",
    )


def _constraint(exc: Exception, method: str, path: str) -> Problem:
    return Problem(409, "conflict", "Conflict", "the change conflicts with the current state of the resource")


def _not_found(exc: Exception, method: str, path: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"no such {exc}")


def _invalid_state(exc: Exception, method: str, path: str) -> Problem:
    assert isinstance(exc, InvalidStateError)
    return Problem(409, "invalid-state", "Invalid state", str(exc), extra={"order_status": exc.status})


def _unavailable(exc: Exception, method: str, path: str) -> Problem:
    assert isinstance(exc, StoreUnavailable)
    return store_unavailable(method, path, exc, exc.maybe_applied)


# The domain's refusals, each as the one problem every ingress answers (HTTP as RFC 9457, gRPC as
# a google.rpc.Status made from it: orderfast/rpc/status.py).
PROBLEMS: Mapping[type[Exception], Callable[[Exception, str, str], Problem]] = {
    _core.ValidationError: _validation,
    InvalidInputError: _invalid_input,
    _core.PriceChangedError: _price_changed,
    OutOfStockError: _out_of_stock,
    _core.CustomerBlockedError: _blocked,
    _core.KeyInFlightError: _in_flight,
    _core.KeyMismatchError: _mismatch,
    ConflictError: _constraint,
    NotFoundError: _not_found,
    InvalidStateError: _invalid_state,
    StoreUnavailable: _unavailable,
}


def problem_for(exc: Exception, method: str, path: str) -> Problem | None:
    """The problem a domain refusal answers (``method`` and ``path`` say what was asked, for the
    ones that depend on it); None for anything else (a bug: a 500)."""
    if isinstance(exc, Problem):
        return exc
    for cls in type(exc).__mro__:
        make = PROBLEMS.get(cls)
        if make is not None:
            return make(exc, method, path)
    return None


async def _problem(request: Request, exc: Exception) -> Response:
    problem = problem_for(exc, request.method, request.url.path)
    assert problem is not None
    return problem.response(request.url.path)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    # One spelling for every problem title ("Not found", as the app's own 404s say it).
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, exc.detail)
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; a path served by several
        # routes (GET and POST /v1/orders) must list them all (RFC 9110 §15.5.6).
        path = request.url.path
        allowed = {
            method
            for route in request.app.router.routes
            if isinstance(route, Route) and route.path_regex.fullmatch(path)
            for method in route.methods or ()
        }
        headers["allow"] = ", ".join(sorted(allowed))
    return Problem(exc.status_code, slug, title, headers=headers).response(request.url.path)


async def _disconnect(request: Request, exc: Exception) -> Response:
    # Read by Starlette itself (not by read_json_body): the client left or sent a broken body.
    log.debug("request body unreadable on %s %s", request.method, request.url.path)
    return body_unreadable().response(request.url.path)


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Problem(500, "internal", "Internal server error").response()


EXCEPTION_HANDLERS: Mapping[type[Exception] | int, Handler] = {
    Problem: _problem,
    **dict.fromkeys(PROBLEMS, _problem),
    HTTPException: _http,
    ClientDisconnect: _disconnect,
    Exception: _internal,
}
