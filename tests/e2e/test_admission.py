"""Admission control against a real server: beyond the worker's concurrency limit a request is
answered 503 ``overloaded`` with ``Retry-After`` before its body is read, while probes and
``/metrics`` still answer and admitted requests succeed; switched off, nothing is shed."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from tests.e2e.conftest import Server, order_body, running
from tests.e2e.test_orders import new_sku

FLOOD = 32  # concurrent create-orders against a ceiling of 2


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory, {"ORDERFAST_ADMISSION_MAX": "2"}, workers=1) as srv:
        yield srv


def flood(server: Server, tag: str) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """FLOOD create-orders (3 lines each, unique keys) and, in the same instant, 4 probe and metrics
    requests: every thread connects first, waits on a barrier, then sends."""
    paths = ["/readyz", "/metrics", "/livez", "/readyz"]
    barrier = threading.Barrier(FLOOD + len(paths))
    body = orjson.dumps(order_body(*((new_sku(server, stock=10_000), 1) for _ in range(3))))

    def create(i: int) -> httpx.Response:
        with server.client(f"{tag}-{i % 4}") as c:
            c.get("/livez")
            barrier.wait()
            return c.post(
                "/v1/orders",
                content=body,
                headers={"content-type": "application/json", "idempotency-key": f"{tag}-{uuid.uuid4().hex}"},
            )

    def probe(path: str) -> httpx.Response:
        with server.client() as c:
            c.get("/livez")
            barrier.wait()
            return c.get(path)

    with ThreadPoolExecutor(FLOOD + len(paths)) as pool:
        creates = [pool.submit(create, i) for i in range(FLOOD)]
        probes = [pool.submit(probe, p) for p in paths]
        return [f.result() for f in creates], [f.result() for f in probes]


def test_a_flood_beyond_the_limit_is_shed_with_a_503_while_probes_and_admitted_requests_succeed(
    tight: Server,
) -> None:
    shed: list[httpx.Response] = []
    for attempt in range(5):  # the requests must overlap in the server; they nearly always do at once
        creates, probes = flood(tight, f"flood{attempt}")
        assert [r.status_code for r in probes] == [200] * len(probes)
        assert {r.status_code for r in creates} <= {201, 503}, [r.text for r in creates]
        assert any(r.status_code == 201 for r in creates)
        shed += [r for r in creates if r.status_code == 503]
        if shed:
            break
    assert shed, "a burst of 32 against a limit of 2 sheds some"
    for r in shed:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "1"
        assert r.headers["x-content-type-options"] == "nosniff", "security headers on a shed answer too"
        problem = r.json()
        assert (problem["type"], problem["status"]) == ("/problems/overloaded", 503)
        assert problem["request_id"] == r.headers["x-request-id"]
    metrics = httpx.get(tight.base_url + "/metrics").text
    counted = re.search(r'^orderfast_admission_shed_total\{route="/v1/orders"\} (\S+)$', metrics, re.M)
    assert counted is not None and float(counted[1]) >= len(shed), metrics
    limit = re.search(r"^orderfast_admission_limit (\S+)$", metrics, re.M)
    assert limit is not None and 1 <= float(limit[1]) <= 2


def in_flight(server: Server) -> float:
    text = httpx.get(server.base_url + "/metrics").text
    found = re.search(r"^orderfast_http_requests_in_flight (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


def test_a_shed_request_is_answered_before_its_body_is_read(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(tmp_path_factory, {"ORDERFAST_ADMISSION_MAX": "1"}, workers=1) as srv:
        token = srv.token("holder").encode()
        head = (
            b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: k1\r\n"
            b"Authorization: Bearer " + token + b"\r\nContent-Length: 100\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as holder:
            holder.sendall(head)  # admitted, then waits for a body that does not come: the one place is taken
            deadline = time.monotonic() + 10
            while in_flight(srv) < 2:  # the holder and this scrape
                assert time.monotonic() < deadline, "the held request never reached the app"
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as second:
                second.sendall(head.replace(b"k1", b"k2"))  # no body either
                answer = second.recv(65536)
                assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
                assert b"/problems/overloaded" in answer
                # The body, arriving after the answer, is read and dropped: the connection stays
                # usable (the server would otherwise close it under the client, unannounced).
                second.sendall(b" " * 100)
                second.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
                assert second.recv(65536).startswith(b"HTTP/1.1 200"), "the connection survived the shed"
            assert httpx.get(srv.base_url + "/readyz").status_code == 200
            assert httpx.get(srv.base_url + "/metrics").status_code == 200


def test_with_admission_off_nothing_is_shed(tmp_path_factory: pytest.TempPathFactory) -> None:
    env = {"ORDERFAST_ADMISSION": "false", "ORDERFAST_ADMISSION_MAX": "2"}
    with running(tmp_path_factory, env, workers=1) as srv:
        for attempt in range(2):
            creates, probes = flood(srv, f"off{attempt}")
            assert [r.status_code for r in creates] == [201] * FLOOD, [r.text for r in creates if r.status_code != 201]
            assert [r.status_code for r in probes] == [200] * len(probes)
        assert "orderfast_admission_shed_total{" not in httpx.get(srv.base_url + "/metrics").text
