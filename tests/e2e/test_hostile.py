"""Hostile bodies through the real server: a clear 4xx each, never a 500, a hang or a crash."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from tests.e2e.conftest import Server
from tests.e2e.test_orders import assert_problem

HOSTILE = [
    (b"[" * 60_000, 400, "malformed-json"),
    (b'{"currency": "\xff\xfe", "items": []}', 400, "malformed-json"),
    (b'{"currency": NaN, "items": []}', 400, "malformed-json"),
    (b'{"currency": "USD", "items": [{"sku": "A", "quantity": 1e309}]}', 400, "malformed-json"),
    (b'{"currency": "USD", "currency": "USD", "items": [{"sku": "A", "quantity": 1}]}', 422, "validation-error"),
    (b'{"currency": "USD", "items": [{"sku": "A", "quantity": "1"}]}', 422, "validation-error"),
    (b'{"currency": "USD", "items": [{"sku": "A", "quantity": 1}], "status": "PAID"}', 422, "validation-error"),
    (b'{"currency": "USD", "items": [{"sku": "A", "quantity": 1}], "total": "0.01"}', 422, "validation-error"),
    (b"null", 422, "validation-error"),
]


def test_hostile_bodies_get_clear_4xx(server: Server) -> None:
    with server.client("hostile") as c:
        for path in ["/v1/orders", "/v1/quotes"]:
            for body, status, slug in HOSTILE:
                r = c.post(
                    path,
                    content=body,
                    headers={"content-type": "application/json", "idempotency-key": uuid.uuid4().hex},
                )
                assert_problem(r, status, slug)


def test_ten_megabyte_bodies_are_refused(server: Server) -> None:
    big = b'{"currency": "USD", "pad": "' + b"x" * 10_000_000 + b'"}'

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    with server.client("hostile") as c:
        headers = {"content-type": "application/json", "idempotency-key": "big"}
        assert_problem(c.post("/v1/orders", content=big, headers=headers), 413, "payload-too-large")
        # Chunked, with no Content-Length to trust: the cap applies while reading.
        assert_problem(c.post("/v1/quotes", content=chunks(), headers=headers), 413, "payload-too-large")
        assert c.get("/livez").status_code == 200
