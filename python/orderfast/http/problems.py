"""RFC 9457 problem details: every error orderfast sends is one of these."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from starlette.responses import Response

from orderfast.observability.logging import REQUEST_ID

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("orderfast.http")


class Problem(Exception):
    """Raise from an endpoint to answer with a problem document.

    ``slug`` names the problem type (``/problems/<slug>``); ``errors`` lists field errors as
    (JSON pointer, code, message).
    """

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Iterable[tuple[str, str, str]] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        type_uri: str | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        self.type_uri = type_uri or f"/problems/{slug}"

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        if self.errors:
            doc["errors"] = [
                {"pointer": pointer, "code": code, "detail": message} for pointer, code, message in self.errors
            ]
        doc.update(self.extra)
        request_id = REQUEST_ID.get()
        if request_id is not None:  # to quote when reporting it: the same id is in the logs
            doc["request_id"] = request_id
        return doc

    def response(self, instance: str | None = None) -> Response:
        return Response(
            orjson.dumps(self.document(instance)),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_JSON,
        )


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "not-found", "Not found", f"no such {what}")


def overloaded(retry_after: int = 1) -> Problem:
    """More requests at once than this worker's adaptive concurrency limit admits (answered before
    the body is read; nothing was done, so any request may be retried)."""
    return Problem(
        503,
        "overloaded",
        "Service overloaded",
        "more requests than the server can answer promptly; retry after the delay Retry-After gives",
        headers={"retry-after": str(retry_after)},
    )


class Throttle:
    """At most one log line per ``interval`` seconds: ``due()`` is None while one is not due, else
    how many were left out since the last line."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._left_out = 0

    def due(self) -> int | None:
        now = self._clock()
        if now < self._next:
            self._left_out += 1
            return None
        self._next = now + self._interval
        left_out, self._left_out = self._left_out, 0
        return left_out


# An outage refuses every request: a line per second, not one per request (the breaker also logs
# each of its transitions).
OUTAGE_LINES = Throttle(1.0)


def store_unavailable(method: str, path: str, error: Exception, maybe_applied: bool) -> Problem:
    """503 ``store-unavailable``, saying whether the change may yet have been made; logged (without
    frames: an outage is an expected event, not a bug to debug) once a second at most."""
    left_out = OUTAGE_LINES.due()
    if left_out is not None:
        log.warning(
            "database unavailable on %s %s: %s%s",
            method,
            path,
            error,
            f" ({left_out} more refusals for it since the last such line)" if left_out else "",
        )
    unknown = maybe_applied and method != "GET"
    if unknown:
        # Never "failed" for a change that may yet commit: the retry tells which it was.
        detail = (
            "the database did not answer within the request budget; the change may or may not have been made: "
            "retry with the same Idempotency-Key (or read the resource) to learn the outcome"
        )
    else:
        detail = "the database cannot be reached; nothing was changed: retry (with the same Idempotency-Key)"
    return Problem(
        503,
        "store-unavailable",
        "Service unavailable",
        detail,
        headers={"retry-after": "1"},
        extra={"outcome": "unknown" if unknown else "not_applied"},
    )
