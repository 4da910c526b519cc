"""After creation: cancel, refund, the payment provider's webhook, and the event feed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderfast.domain.orders import order_json
from orderfast.http.problems import Problem
from orderfast.http.request import BodyLimits, parse_json, principal, read_json_body, read_json_document
from orderfast.services.lifecycle import LifecycleService
from orderfast.services.payments import parse_notice, verify_signature

JSON = "application/json"
MAX_FEED_PAGE = 1000
WEBHOOK_PATH = "/v1/payments/webhook"


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON)


class LifecycleEndpoints:
    def __init__(self, lifecycle: LifecycleService, webhook_secrets: Sequence[str], limits: BodyLimits) -> None:
        self._lifecycle = lifecycle
        self._secrets = list(webhook_secrets)
        self._limits = limits

    def routes(self) -> list[Route]:
        return [
            Route("/v1/orders/{order_id}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/orders/{order_id}/refunds", self.refund, methods=["POST"]),
            Route(WEBHOOK_PATH, self.webhook, methods=["POST"]),
            Route("/v1/events", self.events, methods=["GET"]),
        ]

    async def cancel(self, request: Request) -> Response:
        who = principal(request)
        order = await self._lifecycle.cancel(request.path_params["order_id"], who.user_id, who.is_admin)
        return Response(order_json(order), media_type=JSON)

    async def refund(self, request: Request) -> Response:
        if not principal(request).is_admin:
            raise Problem(403, "forbidden", "Forbidden", "only admins may refund")
        doc = await read_json_document(request, self._limits, empty={})
        if not isinstance(doc, dict) or set(doc) - {"amount"}:
            raise Problem(422, "validation-error", "Invalid request", 'the body is {} or {"amount": "…"}')
        amount = doc.get("amount")
        if amount is not None and not isinstance(amount, str):
            raise Problem(422, "validation-error", "Invalid request", errors=[("/amount", "type", "a decimal string")])
        order = await self._lifecycle.refund(request.path_params["order_id"], amount)
        return Response(order_json(order), media_type=JSON)

    async def webhook(self, request: Request) -> Response:
        if not self._secrets:
            raise Problem(503, "webhook-not-configured", "Webhook not configured", "set ORDERFAST_WEBHOOK_SECRET")
        # The signature covers the raw bytes: checked before anything is parsed (an unsigned caller
        # learns nothing of the body rules); it, not a Content-Type, says what the body is.
        raw = await read_json_body(request, self._limits, untyped=True)
        if not verify_signature(request.headers.get("orderfast-signature"), raw, self._secrets, time.time()):
            raise Problem(401, "invalid-signature", "Invalid signature", "bad, stale or missing Orderfast-Signature")
        notice = parse_notice(parse_json(raw))
        result = await self._lifecycle.payment(notice)
        if result.status == 200:
            return Response(order_json(result.order), media_type=JSON)
        if result.status == 422:
            raise Problem(
                422,
                "payment-mismatch",
                "Payment does not match the order",
                "the amount or currency differs from the order total; the order is flagged for review",
                extra={"order_id": result.order.id, "outcome": result.outcome},
            )
        raise Problem(
            409,
            "invalid-state",
            "Invalid state",
            f"the order is {result.order.status.value}",
            extra={"order_id": result.order.id, "order_status": result.order.status.value, "outcome": result.outcome},
        )

    async def events(self, request: Request) -> Response:
        who = principal(request)
        if not (who.is_admin or "service" in who.roles):
            raise Problem(403, "forbidden", "Forbidden", "the event feed is for the admin and service roles")
        after_text = request.query_params.get("after", "0")
        limit_text = request.query_params.get("limit", "100")
        if not (after_text.isascii() and after_text.isdigit()) or len(after_text) > 18:
            raise Problem(400, "invalid-cursor", "Invalid cursor", "use next_cursor from a previous page")
        if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= MAX_FEED_PAGE:
            raise Problem(400, "invalid-limit", "Invalid limit", f"limit must be 1 to {MAX_FEED_PAGE}")
        after = int(after_text)
        events = await self._lifecycle.events_after(after, int(limit_text))
        next_cursor = str(events[-1].position) if events else after_text
        return _json({"items": [e.envelope for e in events], "next_cursor": next_cursor})
