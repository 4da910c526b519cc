"""Order endpoints: protocol only; the order service does the work."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderfast import _core
from orderfast.domain.orders import order_json
from orderfast.http.paging import page_request, page_response
from orderfast.http.problems import not_found
from orderfast.http.request import BodyLimits, idempotency_key, principal, read_json_body
from orderfast.services.orders import OrderService

JSON = "application/json"


class OrderEndpoints:
    def __init__(self, orders: OrderService, limits: BodyLimits) -> None:
        self._orders = orders
        self._limits = limits

    def routes(self) -> list[Route]:
        return [
            Route("/v1/orders", self.create, methods=["POST"]),
            Route("/v1/orders", self.list, methods=["GET"]),
            Route("/v1/orders/{order_id}", self.get, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        who = principal(request)
        key = idempotency_key(request)
        body = await read_json_body(request, self._limits)
        result = await self._orders.create(who.user_id, key, body)
        headers = {"location": result.location}
        if result.replayed:
            headers["idempotent-replayed"] = "true"
        return Response(result.body, status_code=result.status, headers=headers, media_type=JSON)

    async def get(self, request: Request) -> Response:
        who = principal(request)
        order = await self._orders.get(request.path_params["order_id"])
        # Someone else's order is indistinguishable from no order at all.
        if order is None or (order.customer_id != who.user_id and not who.is_admin):
            raise not_found("order")
        return Response(order_json(order), media_type=JSON)

    async def list(self, request: Request) -> Response:
        who = principal(request)
        limit, before = page_request(request, _core.is_order_id)
        orders = await self._orders.list(who.user_id, limit + 1, before)
        return page_response(orders, limit, lambda o: o.id, lambda o: orjson.Fragment(order_json(o)))
