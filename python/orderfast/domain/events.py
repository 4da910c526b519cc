"""Domain events as they leave the service through the outbox. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from orderfast.domain.lifecycle import Transition
from orderfast.domain.orders import Order, format_timestamp, order_json

EVENT_VERSION = 1


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: str
    type: str
    aggregate_type: str
    aggregate_id: str
    sequence: int  # per aggregate, gap-free, starting at 1
    occurred_at: datetime
    envelope: dict[str, Any]


def order_created(
    event_id: str, order: Order, document: Any = None, trace: dict[str, str] | None = None
) -> OutboxEvent:
    """``document`` is the order's already-built representation when the caller has it (a dict,
    or an ``orjson.Fragment`` of its JSON bytes); ``trace`` the W3C trace context of the request
    that made the event (``traceparent``, ``tracestate``), when it was traced."""
    envelope = {
        "id": event_id,
        "type": "order.created",
        "aggregate_id": order.id,
        "sequence": 1,
        "occurred_at": format_timestamp(order.created_at),
        "version": EVENT_VERSION,
        "data": document if document is not None else orjson.Fragment(order_json(order)),
    }
    if trace:
        envelope["trace"] = trace
    return OutboxEvent(
        id=event_id,
        type="order.created",
        aggregate_type="order",
        aggregate_id=order.id,
        sequence=1,
        occurred_at=order.created_at,
        envelope=envelope,
    )


def transition_event(
    event_id: str, transition: Transition, occurred_at: datetime, trace: dict[str, str] | None = None
) -> OutboxEvent:
    """The event of a state change: ``data`` is the order after it, plus ``change`` with the
    transition's details (reason, amount, …); ``trace`` as for :func:`order_created`."""
    order = transition.order
    data = orjson.Fragment(order_json(order, orjson.dumps(transition.event_data)))
    envelope = {
        "id": event_id,
        "type": transition.event_type,
        "aggregate_id": order.id,
        "sequence": order.sequence,
        "occurred_at": format_timestamp(occurred_at),
        "version": EVENT_VERSION,
        "data": data,
    }
    if trace:
        envelope["trace"] = trace
    return OutboxEvent(
        id=event_id,
        type=transition.event_type,
        aggregate_type="order",
        aggregate_id=order.id,
        sequence=order.sequence,
        occurred_at=occurred_at,
        envelope=envelope,
    )
