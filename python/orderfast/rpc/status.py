"""A problem (the HTTP API's refusal) as a gRPC status with google.rpc details: one refusal, two
spellings. ``ErrorInfo.reason`` is the problem's slug, every field error is a ``BadRequest``
field violation (``field``: the JSON pointer, ``reason``: the stable code), and a refusal that
says when to retry carries ``RetryInfo``."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from orderfast.http.problems import Problem

DOMAIN = "orderfast"

# By HTTP status, then by slug where one status holds refusals of different kinds.
_BY_STATUS = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    409: code_pb2.FAILED_PRECONDITION,
    413: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}
_BY_SLUG = {
    "idempotency-key-in-use": code_pb2.ABORTED,  # retry shortly: the twin request is still running
    "conflict": code_pb2.ABORTED,
    "idempotency-key-reused": code_pb2.ALREADY_EXISTS,
}


def status_of(problem: Problem) -> status_pb2.Status:
    code = _BY_SLUG.get(problem.slug, _BY_STATUS.get(problem.status, code_pb2.INTERNAL))
    details: list[Any] = [
        error_details_pb2.ErrorInfo(
            reason=problem.slug,
            domain=DOMAIN,
            metadata={k: _text(v) for k, v in problem.extra.items()},
        )
    ]
    if problem.errors:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=pointer, reason=code_, description=message)
                    for pointer, code_, message in problem.errors
                ]
            )
        )
    retry = problem.headers.get("retry-after")
    if retry is not None and retry.isdigit():
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry))))
    status = status_pb2.Status(code=code, message=problem.detail or problem.title)
    for detail in details:
        status.details.add().Pack(detail)
    return status


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def grpc_code(status: status_pb2.Status) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == status.code)
