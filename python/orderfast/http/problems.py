"""RFC 9457 problem details: every error orderfast sends is one of these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.responses import Response

from orderfast.observability.logging import REQUEST_ID

PROBLEM_JSON = "application/problem+json"


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
