"""POST /v1/quotes: price a create-order body without persisting anything (the pure hot path)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderfast.http.request import BodyLimits, read_json_body
from orderfast.services.orders import OrderService


class QuoteEndpoints:
    def __init__(self, orders: OrderService, limits: BodyLimits) -> None:
        self._orders = orders
        self._limits = limits

    def routes(self) -> list[Route]:
        return [Route("/v1/quotes", self.quote, methods=["POST"])]

    async def quote(self, request: Request) -> Response:
        body = await read_json_body(request, self._limits)
        return Response(await self._orders.quote(body), media_type="application/json")
