"""Order endpoints: protocol only; the order service does the work."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from orderfast import _core
from orderfast.domain.orders import order_json
from orderfast.http.guard import PRINCIPAL
from orderfast.http.paging import page_request, page_response
from orderfast.http.problems import not_found
from orderfast.http.request import BodyLimits, idempotency_key, principal, read_body
from orderfast.http.validators import conditional, etag
from orderfast.services.orders import OrderService

JSON = "application/json"
JSON_HEAD = (b"content-type", b"application/json")
REPLAYED = (b"idempotent-replayed", b"true")


class OrderEndpoints:
    def __init__(self, orders: OrderService, limits: BodyLimits) -> None:
        self._orders = orders
        self._limits = limits

    def routes(self) -> list[Route]:
        return [
            Route("/v1/orders", CreateOrder(self._orders, self._limits), methods=["POST"]),
            Route("/v1/orders", self.list, methods=["GET"]),
            Route("/v1/orders/{order_id}", self.get, methods=["GET"]),
        ]

    async def get(self, request: Request) -> Response:
        who = principal(request)
        order = await self._orders.document(request.path_params["order_id"])
        # Someone else's order is indistinguishable from no order at all.
        if order is None or (order.customer_id != who.user_id and not who.is_admin):
            raise not_found("order")
        return conditional(request, etag(order.sequence), order.body)

    async def list(self, request: Request) -> Response:
        who = principal(request)
        limit, before = page_request(request, _core.is_order_id)
        orders = await self._orders.list(who.user_id, limit + 1, before)
        return page_response(orders, limit, lambda o: o.id, lambda o: orjson.Fragment(order_json(o)))


class CreateOrder:
    """POST /v1/orders, the hottest route, as a plain ASGI app (Starlette calls an instance as one,
    where it would wrap a function in a ``Request``): no Request or Response to build, and no second
    exception-handling wrapper (the app's own still answers whatever this raises)."""

    def __init__(self, orders: OrderService, limits: BodyLimits) -> None:
        self._orders = orders
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        who = scope[PRINCIPAL]
        key = idempotency_key(scope)
        body = await read_body(scope, receive, self._limits)
        result = await self._orders.create(who.user_id, key, body)
        headers = [JSON_HEAD, (b"content-length", b"%d" % len(result.body)), (b"location", result.location.encode())]
        if result.replayed:
            headers.append(REPLAYED)
        await send({"type": "http.response.start", "status": result.status, "headers": headers})
        await send({"type": "http.response.body", "body": result.body})
