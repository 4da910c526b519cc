"""X-Request-Id: taken from the client or made, on every response, in problem bodies and in the log
lines written while the request is handled; the access log, when on, is one JSON line per request."""

from __future__ import annotations

import re
import time

import httpx
import orjson
import pytest

from orderfast.services.payments import sign
from tests.conftest import WEBHOOK_SECRET
from tests.e2e.conftest import order_body, running

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_request_ids_reach_responses_problems_and_logs(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, {"ORDERFAST_ACCESS_LOG": "true"}, workers=1) as srv:
        made = httpx.get(f"{srv.base_url}/livez")
        assert UUID.fullmatch(made.headers["x-request-id"]), "a new id is a UUIDv7"
        mine = httpx.get(f"{srv.base_url}/livez", headers={"x-request-id": "client-req-42"})
        assert mine.headers["x-request-id"] == "client-req-42"
        for bad in ("a b", "x" * 201, ""):
            replaced = httpx.get(f"{srv.base_url}/livez", headers={"x-request-id": bad})
            assert UUID.fullmatch(replaced.headers["x-request-id"]), f"{bad!r} is replaced, not echoed"
        with srv.client("rid-user") as c:
            refused = c.post("/v1/orders", json=order_body(("NOPE-1", 1)), headers={"idempotency-key": "r-1"})
            assert refused.status_code == 422
            assert refused.json()["request_id"] == refused.headers["x-request-id"]
            order = c.post("/v1/orders", json=order_body(("SKU-1", 1)), headers={"idempotency-key": "r-2"}).json()
        # A payment for the wrong amount is logged (a warning) while its request is handled.
        notice = {
            "event_id": "rid-1",
            "order_id": order["id"],
            "status": "succeeded",
            "amount": "1.00",
            "currency": "USD",
        }
        raw = orjson.dumps(notice)
        headers = {
            "orderfast-signature": sign(WEBHOOK_SECRET, int(time.time()), raw),
            "content-type": "application/json",
            "x-request-id": "pay-req-7",
        }
        mismatch = httpx.post(f"{srv.base_url}/v1/payments/webhook", content=raw, headers=headers)
        assert mismatch.status_code == 422 and mismatch.json()["request_id"] == "pay-req-7"
    lines = [orjson.loads(line) for line in srv.log_path.read_text().splitlines()]
    warning = next(e for e in lines if e["logger"] == "orderfast.lifecycle" and "payment event" in e["msg"])
    assert warning["request_id"] == "pay-req-7", "an app log line carries the request's id"
    # (The fixture polled /startupz while the server started.)
    access = [e for e in lines if e["logger"] == "orderfast.access" and e["path"] != "/startupz"]
    assert len(access) == 8, "one access line per request: 5 probes, 2 orders, 1 payment"
    mine_line = next(e for e in access if e.get("request_id") == "client-req-42")
    assert (mine_line["method"], mine_line["path"], mine_line["route"], mine_line["status"]) == (
        "GET",
        "/livez",
        "/livez",
        200,
    )
    assert mine_line["duration_ms"] >= 0 and mine_line["level"] == "info"
    refused_line = next(e for e in access if e["status"] == 422 and e["path"] == "/v1/orders")
    assert refused_line["route"] == "/v1/orders"


def test_the_access_log_is_off_by_default(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, {}, workers=1) as srv:
        assert httpx.get(f"{srv.base_url}/livez").status_code == 200
    assert '"orderfast.access"' not in srv.log_path.read_text()
