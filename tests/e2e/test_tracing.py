"""Tracing end to end, in one process, with the OpenTelemetry SDK's in-memory exporter: a create-order
sent with the client's ``traceparent`` through the app (real PostgreSQL, real Redis for the shared
rate limits), its outbox envelope, the relay that publishes it and a consumer that handles it — one
trace from the client to the consumer's queries."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette

from orderfast.app import create_app
from orderfast.config import Settings
from orderfast.http.auth import mint_token
from orderfast.observability import tracing
from orderfast.outbox import example_consumer
from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.outbox.relay import Relay
from orderfast.services.catalog import seed_demo
from orderfast.store.postgres import PostgresStore
from tests.conftest import JWT_SECRET
from tests.e2e.conftest import running

pytestmark = pytest.mark.anyio

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
TRACESTATE = "vendor=opaque"
ORDER = orjson.dumps({"currency": "USD", "items": [{"sku": "SKU-1", "quantity": 2}]})


@pytest.fixture
async def dsn(pg_database_factory: Callable[[], str]) -> str:
    """A migrated database with the demo catalog."""
    dsn = pg_database_factory()
    store = PostgresStore(dsn, min_size=1, max_size=2)
    await store.open(check_schema=False)
    await store.migrate()
    await seed_demo(store)
    await store.close()
    return dsn


def app_for(dsn: str, tmp_path: Path, exporter: InMemorySpanExporter, *, traced: bool, **env: str) -> Starlette:
    settings = Settings.from_env(
        {
            "ORDERFAST_DATABASE_URL": dsn,
            "ORDERFAST_DATA_DIR": str(tmp_path),
            "ORDERFAST_JWT_SECRET": JWT_SECRET,
            "ORDERFAST_METRICS": "false",
            "ORDERFAST_SWEEP_INTERVAL": "0",
            "ORDERFAST_TRACING": "true" if traced else "false",
            **env,
        }
    )
    return create_app(settings, trace_exporter=exporter)


async def create_order(app: Starlette, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.post(
            "/v1/orders",
            content=ORDER,
            headers={
                "authorization": f"Bearer {mint_token(JWT_SECRET, 'u-trace')}",
                "idempotency-key": uuid.uuid4().hex,
                "content-type": "application/json",
                **headers,
            },
        )


async def envelope_of(dsn: str, order_id: str, sequence: int = 1) -> dict[str, Any]:
    store = PostgresStore(dsn, min_size=1, max_size=1)
    await store.open()
    try:
        async with store.pool.acquire() as conn:
            text = await conn.fetchval(
                "SELECT envelope::text FROM outbox WHERE aggregate_id = $1 AND sequence = $2", order_id, sequence
            )
    finally:
        await store.close()
    envelope: dict[str, Any] = orjson.loads(text)
    return envelope


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) in hex."""
    assert span.context is not None
    parent = None if span.parent is None else f"{span.parent.span_id:016x}"
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}", parent


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and parent.context and s.parent.span_id == parent.context.span_id]


async def test_a_create_order_is_one_trace_from_the_client_to_the_consumer(
    dsn: str, redis_url: str, tmp_path: Path, publisher: RedisStreamsPublisher
) -> None:
    exporter = InMemorySpanExporter()
    app = app_for(dsn, tmp_path, exporter, traced=True, ORDERFAST_REDIS_URL=redis_url)
    async with app.router.lifespan_context(app):
        assert tracing.ENABLED
        response = await create_order(app, traceparent=TRACEPARENT, tracestate=TRACESTATE)
        assert response.status_code == 201, response.text
        order_id = response.json()["id"]
        request_spans = list(exporter.get_finished_spans())

        # The request: one SERVER span, the child of the client's span, in the client's trace.
        server = one(request_spans, "POST /v1/orders")
        trace_id, server_id, parent = hex_ids(server)
        assert server.kind is SpanKind.SERVER
        assert (trace_id, parent) == (CLIENT_TRACE, CLIENT_SPAN)
        attributes = dict(server.attributes or {})
        assert attributes["http.request.method"] == "POST"
        assert attributes["http.route"] == "/v1/orders"
        assert attributes["http.response.status_code"] == 201
        assert attributes["orderfast.request_id"] == response.headers["x-request-id"]
        # Its steps, each its child.
        steps = {s.name for s in children(request_spans, server)}
        assert {"authenticate", "order.parse", "order.price", "order.render", "order.batch_wait"} <= steps
        # The shared rate limiter's Redis call, by the redis instrumentation.
        assert any(
            s.kind is SpanKind.CLIENT and s.attributes and s.attributes.get("db.system") == "redis"
            for s in children(request_spans, server)
        ), [s.name for s in request_spans]
        # The batch it rode in: the child of its wait; the database call the batch's child.
        wait = one(request_spans, "order.batch_wait")
        write = one(request_spans, "order.batch_write")
        assert hex_ids(write)[2] == hex_ids(wait)[1]
        assert (write.attributes or {})["orderfast.batch.size"] == 1
        queries = [s for s in children(request_spans, write) if s.kind is SpanKind.CLIENT]
        assert any("orderfast_create_orders" in str((s.attributes or {}).get("db.statement")) for s in queries)
        # Everything the request did is in the client's trace.
        assert {hex_ids(s)[0] for s in request_spans} == {CLIENT_TRACE}
        assert all(s.status.status_code is not StatusCode.ERROR for s in request_spans)

        # The event stores the request's trace context.
        envelope = await envelope_of(dsn, order_id)
        assert envelope["trace"] == {"traceparent": f"00-{CLIENT_TRACE}-{server_id}-01", "tracestate": TRACESTATE}

        # The relay continues it: the PRODUCER span is the request's child; the batch, a trace of
        # its own, holds the Redis call and the marking, linked both ways to the PRODUCER span.
        exporter.clear()
        store = PostgresStore(dsn, min_size=1, max_size=2)
        await store.open()
        try:
            assert await Relay(store, publisher).run_once() == 1
            relay_spans = list(exporter.get_finished_spans())
            produced = one(relay_spans, "publish order.created")
            assert produced.kind is SpanKind.PRODUCER
            assert hex_ids(produced)[0] == CLIENT_TRACE
            assert hex_ids(produced)[2] == server_id
            assert (produced.attributes or {})["orderfast.event.id"] == envelope["id"]
            batch = one(relay_spans, "outbox.relay")
            assert batch.parent is None
            assert hex_ids(batch)[0] != CLIENT_TRACE
            assert [f"{link.context.span_id:016x}" for link in produced.links] == [hex_ids(batch)[1]]
            assert [f"{link.context.span_id:016x}" for link in batch.links] == [hex_ids(produced)[1]]
            batch_calls = {s.attributes.get("db.system") for s in children(relay_spans, batch) if s.attributes}
            assert batch_calls == {"redis", "postgresql"}, "XADD and the marking, in the batch"

            # The consumer continues it too: its CONSUMER span is the request's child, the
            # handler's queries (inbox, statistics) are the CONSUMER span's.
            exporter.clear()
            client = aioredis.Redis.from_url(redis_url)
            try:
                consumer = await example_consumer.build(store.pool, client, prefix=publisher._prefix, name="c1")
                consumer._block_ms = 10
                assert await consumer.run_once() == 1
            finally:
                await client.aclose()
            consumer_spans = list(exporter.get_finished_spans())
            processed = one(consumer_spans, "process order.created")
            assert processed.kind is SpanKind.CONSUMER
            assert hex_ids(processed)[0] == CLIENT_TRACE
            assert hex_ids(processed)[2] == server_id
            handled = children(consumer_spans, processed)
            assert any(s.attributes and s.attributes.get("db.system") == "postgresql" for s in handled)
            assert any(s.attributes and s.attributes.get("db.system") == "redis" for s in handled), "XACK"
            assert all(hex_ids(s)[0] == CLIENT_TRACE for s in handled)
        finally:
            await store.close()
    assert not tracing.ENABLED, "the lifespan's end stops tracing"


async def test_without_a_client_trace_the_request_starts_one(dsn: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    app = app_for(dsn, tmp_path, exporter, traced=True)
    async with app.router.lifespan_context(app):
        response = await create_order(app)
        assert response.status_code == 201
        order_id = response.json()["id"]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/nowhere")).status_code == 404
            canceled = await client.post(
                f"/v1/orders/{order_id}/cancel",
                headers={"authorization": f"Bearer {mint_token(JWT_SECRET, 'u-trace')}", "traceparent": TRACEPARENT},
            )
            assert canceled.status_code == 200, canceled.text
    spans = list(exporter.get_finished_spans())
    server = one(spans, "POST /v1/orders")
    assert server.parent is None
    cancel = one(spans, "POST /v1/orders/{order_id}/cancel")
    assert hex_ids(cancel)[:3:2] == (CLIENT_TRACE, CLIENT_SPAN)
    assert {hex_ids(s)[0] for s in spans if s.name != "GET" and hex_ids(s)[0] != CLIENT_TRACE} == {hex_ids(server)[0]}
    # Probes are not traced; a path no route serves is named by its method alone.
    assert not any("readyz" in s.name for s in spans)
    unmatched = one(spans, "GET")
    assert (unmatched.attributes or {})["http.response.status_code"] == 404
    assert "http.route" not in (unmatched.attributes or {})
    # Background work (the catalog refresh's queries) starts no trace of its own.
    assert all(s.parent is not None or s.kind is SpanKind.SERVER for s in spans)
    envelope = await envelope_of(dsn, order_id)
    # (flags: sampled, and — for a trace id this SDK made — random, W3C level 2)
    assert envelope["trace"]["traceparent"].startswith(f"00-{hex_ids(server)[0]}-{hex_ids(server)[1]}-0")
    # A change's event stores the trace of the request that made it too.
    canceled_event = await envelope_of(dsn, order_id, sequence=2)
    assert canceled_event["type"] == "order.canceled"
    assert canceled_event["trace"] == {"traceparent": f"00-{CLIENT_TRACE}-{hex_ids(cancel)[1]}-01"}


async def test_tracing_off_leaves_no_span_and_no_trace_in_the_envelope(dsn: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    app = app_for(dsn, tmp_path, exporter, traced=False)
    async with app.router.lifespan_context(app):
        assert not tracing.ENABLED
        response = await create_order(app, traceparent=TRACEPARENT)
        assert response.status_code == 201
    assert exporter.get_finished_spans() == ()
    envelope = await envelope_of(dsn, response.json()["id"])
    assert set(envelope) == {"id", "type", "aggregate_id", "sequence", "occurred_at", "version", "data"}


def test_a_server_traces_in_its_workers_and_flushes_when_stopped(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A real ``orderfast serve`` with two workers, spans printed by the console exporter: each
    worker starts tracing after the fork (its spans name its pid, not the main process's), and
    every span is out by the time the server has stopped (each worker flushed at its lifespan end)."""
    env = {"ORDERFAST_TRACING": "true", "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "orderfast-test"}
    traces = [uuid.uuid4().hex for _ in range(6)]
    with running(tmp_path_factory, env, workers=2) as server:
        assert server.proc is not None
        main_pid = server.proc.pid
        with server.client("u-trace") as client:
            for trace in traces:
                r = client.post(
                    "/v1/orders",
                    content=ORDER,
                    headers={
                        "idempotency-key": uuid.uuid4().hex,
                        "content-type": "application/json",
                        "traceparent": f"00-{trace}-{CLIENT_SPAN}-01",
                    },
                )
                assert r.status_code == 201, r.text
    spans = console_spans(server.log_path.read_text())
    served = [s for s in spans if s["name"] == "POST /v1/orders"]
    assert sorted(s["context"]["trace_id"] for s in served) == sorted(f"0x{t}" for t in traces)
    assert all(s["parent_id"] == f"0x{CLIENT_SPAN}" for s in served)
    pids = {s["resource"]["attributes"]["process.pid"] for s in spans}
    assert pids and main_pid not in pids, "spans come from the workers"
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"orderfast-test"}


def console_spans(log: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (one indented JSON object each) among the log lines."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while (start := log.find('{\n    "name"', at)) >= 0:
        span, at = decoder.raw_decode(log, start)
        found.append(span)
    return found


async def test_orderfast_relay_continues_the_trace_and_flushes_on_exit(
    dsn: str, redis_url: str, tmp_path: Path, publisher: RedisStreamsPublisher
) -> None:
    """``orderfast relay --once`` as its own process, spans printed by the console exporter."""
    app = app_for(dsn, tmp_path, InMemorySpanExporter(), traced=True)
    async with app.router.lifespan_context(app):
        response = await create_order(app, traceparent=TRACEPARENT)
        assert response.status_code == 201
    envelope = await envelope_of(dsn, response.json()["id"])
    server_span = envelope["trace"]["traceparent"].split("-")[2]
    env = {
        **os.environ,
        "ORDERFAST_DATABASE_URL": dsn,
        "ORDERFAST_REDIS_URL": redis_url,
        "ORDERFAST_STREAM_PREFIX": publisher._prefix,
        "ORDERFAST_METRICS": "false",
        "ORDERFAST_TRACING": "true",
        "OTEL_TRACES_EXPORTER": "console",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "orderfast", "relay", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    spans = console_spans(done.stdout)
    [produced] = [s for s in spans if s["name"] == "publish order.created"]
    assert produced["kind"] == "SpanKind.PRODUCER"
    assert (produced["context"]["trace_id"], produced["parent_id"]) == (f"0x{CLIENT_TRACE}", f"0x{server_span}")
    assert any(s["name"] == "outbox.relay" for s in spans)
