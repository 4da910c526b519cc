"""Order endpoints: protocol only; the order service does the work."""

from __future__ import annotations

import base64
import binascii

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderfast import _core
from orderfast.domain.orders import order_json
from orderfast.http.problems import Problem, not_found
from orderfast.http.request import BodyLimits, idempotency_key, principal, read_json_body
from orderfast.services.orders import OrderService

DEFAULT_PAGE = 20
MAX_PAGE = 100
JSON = "application/json"


def encode_cursor(order_id: str) -> str:
    return base64.urlsafe_b64encode(order_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        order_id = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError):
        order_id = ""
    if not _core.is_order_id(order_id):
        raise Problem(400, "invalid-cursor", "Invalid cursor", "use next_cursor from a previous page")
    return order_id


def parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise Problem(400, "invalid-limit", "Invalid limit", f"limit must be 1 to {MAX_PAGE}")
    return int(text)


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
        limit = parse_limit(request.query_params.get("limit"))
        cursor = request.query_params.get("cursor")
        before = decode_cursor(cursor) if cursor is not None else None
        # One extra row tells whether another page exists without a count query.
        orders = await self._orders.list(who.user_id, limit + 1, before)
        page = orders[:limit]
        next_cursor = encode_cursor(page[-1].id) if len(orders) > limit else None
        doc = {"items": [orjson.Fragment(order_json(o)) for o in page], "next_cursor": next_cursor}
        return Response(orjson.dumps(doc), media_type=JSON)
