"""POST /v1/quotes: price a create-order body without persisting anything (the pure hot path)."""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from orderfast.http.guard import PRINCIPAL
from orderfast.http.request import BodyLimits, read_body
from orderfast.services.orders import OrderService

JSON_HEAD = (b"content-type", b"application/json")


class QuoteEndpoints:
    """A plain ASGI app (Starlette calls an instance as one, where it would wrap a function in a
    ``Request``): the hot route skips building a Request and a Response, and the second
    exception-handling wrapper Starlette puts around each function endpoint (the app's own still
    answers whatever this raises)."""

    def __init__(self, orders: OrderService, limits: BodyLimits) -> None:
        self._orders = orders
        self._limits = limits

    def routes(self) -> list[Route]:
        return [Route("/v1/quotes", self, methods=["POST"])]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(scope, receive, self._limits)
        payload = await self._orders.quote(body, scope[PRINCIPAL].user_id)
        headers = [JSON_HEAD, (b"content-length", b"%d" % len(payload))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
