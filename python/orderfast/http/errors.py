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


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response(request.url.path)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _core.ValidationError)
    if exc.malformed:
        problem = Problem(400, "malformed-json", "Malformed JSON", exc.errors[0][2])
    else:
        problem = Problem(422, "validation-error", "Invalid request", str(exc), errors=exc.errors)
    return problem.response(request.url.path)


async def _invalid_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInputError)
    return Problem(422, "validation-error", "Invalid request", str(exc), errors=exc.errors).response(request.url.path)


async def _price_changed(request: Request, exc: Exception) -> Response:
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
    ).response(request.url.path)


async def _out_of_stock(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OutOfStockError)
    return Problem(409, "out-of-stock", "Out of stock", str(exc), extra={"sku": exc.sku}).response(request.url.path)


async def _blocked(request: Request, exc: Exception) -> Response:
    return Problem(
        403, "customer-blocked", "Customer blocked", "this customer may not place orders; ask the shop"
    ).response(request.url.path)


async def _in_flight(request: Request, exc: Exception) -> Response:
    return Problem(
        409,
        "idempotency-key-in-use",
        "Request in progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
        headers={"retry-after": "1"},
    ).response(request.url.path)


async def _mismatch(request: Request, exc: Exception) -> Response:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "this Idempotency-Key was already used with a different request body",
    ).response(request.url.path)


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


async def _constraint(request: Request, exc: Exception) -> Response:
    return Problem(409, "conflict", "Conflict", "the change conflicts with the current state of the resource").response(
        request.url.path
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return Problem(404, "not-found", "Not found", f"no such {exc}").response(request.url.path)


async def _invalid_state(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidStateError)
    return Problem(
        409,
        "invalid-state",
        "Invalid state",
        str(exc),
        extra={"order_status": exc.status},
    ).response(request.url.path)


async def _unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreUnavailable)
    path = request.url.path
    return store_unavailable(request.method, path, exc, exc.maybe_applied).response(path)


async def _disconnect(request: Request, exc: Exception) -> Response:
    # Read by Starlette itself (not by read_json_body): the client left or sent a broken body.
    log.debug("request body unreadable on %s %s", request.method, request.url.path)
    return body_unreadable().response(request.url.path)


async def _internal(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Problem(500, "internal", "Internal server error").response()


EXCEPTION_HANDLERS: Mapping[type[Exception] | int, Handler] = {
    Problem: _problem,
    _core.ValidationError: _validation,
    InvalidInputError: _invalid_input,
    _core.PriceChangedError: _price_changed,
    OutOfStockError: _out_of_stock,
    _core.CustomerBlockedError: _blocked,
    _core.KeyInFlightError: _in_flight,
    _core.KeyMismatchError: _mismatch,
    HTTPException: _http,
    ConflictError: _constraint,
    NotFoundError: _not_found,
    InvalidStateError: _invalid_state,
    StoreUnavailable: _unavailable,
    ClientDisconnect: _disconnect,
    Exception: _internal,
}
