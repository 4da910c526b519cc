"""Tracing's parts: off it imports nothing and changes nothing; on, the helpers the layers call, the
group commit's batch spans, the sampler, log lines with trace ids, and the start-up error when the
packages are missing. (End to end, with PostgreSQL and Redis: tests/e2e/test_tracing.py.)"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from orderfast.config import ConfigError, Settings
from orderfast.domain.events import order_created
from orderfast.observability import tracing
from orderfast.observability.logging import JsonFormatter
from orderfast.store.group_commit import GroupCommit
from tests.conftest import JWT_SECRET
from tests.store.test_contract import new_order

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    with tracing.started(found):
        yield found
    assert not tracing.ENABLED


def run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# A whole app in a fresh interpreter: migrate, the lifespan, a create-order, the relay's and the
# consumer's modules; then which OpenTelemetry modules got imported beyond those the drivers import
# themselves (redis-py 8 imports the SDK's metrics, when installed, for its own optional metrics).
SERVE_ONE_ORDER = """
    import sys
    import asyncpg, granian, redis, redis.asyncio, starlette.applications
    drivers = {m for m in sys.modules if m.split(".")[0] == "opentelemetry"}
    import asyncio, httpx, orjson
    from orderfast.cli import main
    from orderfast.app import create_app
    from orderfast.http.auth import mint_token
    import orderfast.outbox.consumer, orderfast.outbox.relay

    assert main(["migrate", "--seed-demo"]) == 0

    async def order():
        app = create_app()
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                r = await client.post("/v1/orders", content=orjson.dumps(
                    {"currency": "USD", "items": [{"sku": "SKU-1", "quantity": 1}]}), headers={
                    "authorization": "Bearer " + mint_token(sys.argv[1] if len(sys.argv) > 1 else SECRET, "u-1"),
                    "idempotency-key": "k-1", "content-type": "application/json",
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
                assert r.status_code == 201, r.text

    SECRET = __import__("os").environ["ORDERFAST_JWT_SECRET"]
    asyncio.run(order())
    print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry" and m not in drivers))
"""


@pytest.mark.parametrize("traced", [False, True], ids=["off", "on"])
def test_off_orderfast_imports_no_opentelemetry_module(tmp_path: Path, traced: bool) -> None:
    done = run(
        SERVE_ONE_ORDER,
        {
            "ORDERFAST_DATA_DIR": str(tmp_path),
            "ORDERFAST_JWT_SECRET": JWT_SECRET,
            "ORDERFAST_TRACING": str(traced).lower(),
            "OTEL_TRACES_EXPORTER": "none",
            "ORDERFAST_DATABASE_URL": "",
            "ORDERFAST_REDIS_URL": "",
        },
    )
    assert done.returncode == 0, done.stderr
    imported = eval(done.stdout.strip().splitlines()[-1])
    if traced:  # the check sees the imports when there are some
        assert "opentelemetry.sdk.trace" in imported
    else:
        assert imported == []


def test_on_without_the_packages_is_one_line_at_start_up(tmp_path: Path) -> None:
    done = run(
        """
        import sys
        sys.modules["opentelemetry.sdk.trace"] = None  # as if opentelemetry-sdk were not installed
        from orderfast.cli import main
        sys.exit(main(["serve", "--port", "0"]))
        """,
        {
            "ORDERFAST_DATA_DIR": str(tmp_path),
            "ORDERFAST_JWT_SECRET": JWT_SECRET,
            "ORDERFAST_TRACING": "true",
            "ORDERFAST_METRICS": "false",
        },
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "orderfast: configuration error: ORDERFAST_TRACING=true, but opentelemetry-sdk is not installed "
        "(pip install 'orderfast[otel]')"
    ]


def test_an_exporter_this_build_cannot_use_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from orderfast.app import check_tracing

    settings = Settings(data_dir=tmp_path, tracing=True)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER='zipkin' is not supported"):
        check_tracing(settings)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigError, match="'grpc' is not supported"):
        check_tracing(settings)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL")
    check_tracing(settings)


def test_the_envelope_has_a_trace_only_when_given_one() -> None:
    order = new_order().order
    plain = order_created("e-1", order)
    assert list(plain.envelope) == ["id", "type", "aggregate_id", "sequence", "occurred_at", "version", "data"]
    trace = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    traced = order_created("e-1", order, trace=trace)
    assert list(traced.envelope) == [*plain.envelope, "trace"]
    assert orjson.loads(orjson.dumps(traced.envelope))["trace"] == trace


def test_a_span_is_current_inside_and_a_failure_names_its_type_only(exporter: InMemorySpanExporter) -> None:
    with tracing.span("outer") as outer, tracing.span("inner", {"k": 1}):
        assert tracing.carrier() is not None
    with pytest.raises(ValueError), tracing.span("fails"):
        raise ValueError("SELECT secret FROM rows")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["inner"].parent is not None and spans["inner"].parent.span_id == outer.get_span_context().span_id
    failed = spans["fails"]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "ValueError"
    assert "SELECT" not in str(failed.status.description) and not failed.events, "no message, no stack"
    assert tracing.carrier() is None, "outside any span"


def test_an_instrumentation_s_exception_leaves_its_type_only(exporter: InMemorySpanExporter) -> None:
    """The asyncpg instrumentation records exceptions the SDK's way (message and stack); a
    database error's message may quote row values: the exporter never sees them."""
    tracer = tracing._get().tracer
    with tracing.span("request"), pytest.raises(KeyError), tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT):
        raise KeyError("duplicate key value\nDETAIL:  Key (sku)=(secret-row-value) already exists.")
    insert = next(s for s in exporter.get_finished_spans() if s.name == "INSERT")
    assert insert.status.status_code is StatusCode.ERROR
    [event] = insert.events
    assert event.name == "exception" and dict(event.attributes or {}).get("exception.type") == "KeyError"
    shown = repr((insert.status.description, [dict(e.attributes or {}) for e in insert.events], insert.attributes))
    assert "secret" not in shown and "Traceback" not in shown


def test_a_stored_context_is_continued(exporter: InMemorySpanExporter) -> None:
    with tracing.span("request"):
        stored = tracing.carrier()
    assert stored is not None and set(stored) == {"traceparent"}
    with tracing.consumer("process order.created", stored, {}):
        pass
    with tracing.consumer("process order.created", None, {}):
        pass
    with tracing.consumer("process order.created", {"traceparent": "garbage"}, {}):
        pass
    request, continued, fresh, bad = exporter.get_finished_spans()
    assert continued.parent is not None and continued.parent.span_id == _ctx(request).span_id
    assert _ctx(continued).trace_id == _ctx(request).trace_id
    assert fresh.parent is None and bad.parent is None and continued.kind is SpanKind.CONSUMER


def _ctx(span: ReadableSpan):  # type: ignore[no-untyped-def]
    assert span.context is not None
    return span.context


def test_beneath_a_request_not_sampled_nothing_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    exporter = InMemorySpanExporter()
    with tracing.started(exporter):
        scope = {"type": "http", "method": "GET", "path": "/v1/orders", "headers": []}
        server = tracing.server(scope, "r-1")
        assert server is not None
        with tracing.span("step") as step:
            assert not step.is_recording()
            assert not is_instrumentation_enabled(), "queries beneath are not instrumented"
            stored = tracing.carrier()
        server.finish("/v1/orders", 200)
        assert is_instrumentation_enabled()
    assert exporter.get_finished_spans() == ()
    assert stored is not None
    assert int(stored["traceparent"][-2:], 16) & 1 == 0, "not sampled: the decision travels with the event"


def test_client_calls_outside_any_span_start_no_trace(exporter: InMemorySpanExporter) -> None:
    tracer = tracing._get().tracer
    tracer.start_span("SELECT", kind=SpanKind.CLIENT).end()  # a background query: dropped
    with tracing.span("request"):
        tracer.start_span("SELECT", kind=SpanKind.CLIENT).end()
    tracer.start_span("root", kind=SpanKind.INTERNAL).end()
    assert [(s.name, s.parent is None) for s in exporter.get_finished_spans()] == [
        ("SELECT", False),
        ("request", True),
        ("root", True),
    ]


def test_log_lines_carry_the_trace_and_span_ids(exporter: InMemorySpanExporter) -> None:
    record = logging.LogRecord("orderfast.test", logging.INFO, __file__, 1, "hello", None, None)
    assert "trace_id" not in orjson.loads(JsonFormatter().format(record))
    with tracing.span("request") as span:
        entry = orjson.loads(JsonFormatter().format(record))
    ctx = span.get_span_context()
    assert (entry["trace_id"], entry["span_id"]) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


async def _batch_of_two(group: GroupCommit[str, str], gate: asyncio.Event) -> None:
    first = asyncio.create_task(group.submit(["blocker"]))
    await asyncio.sleep(0)  # the blocker's batch is being written: what follows queues up

    async def request(name: str) -> list[str]:
        with tracing.span(name):
            return await group.submit([name])

    waiting = [asyncio.create_task(request("a")), asyncio.create_task(request("b"))]
    await asyncio.sleep(0)
    gate.set()
    assert await first == ["blocker!"]
    assert [await w for w in waiting] == [["a!"], ["b!"]]


def test_a_batch_is_the_child_of_its_first_wait_and_linked_to_the_others(exporter: InMemorySpanExporter) -> None:
    gate = asyncio.Event()
    batches: list[Sequence[str]] = []

    async def write(items: Sequence[str]) -> list[str]:
        batches.append(items)
        await gate.wait()
        return [f"{i}!" for i in items]

    group: GroupCommit[str, str] = GroupCommit(write, max_batch=8, inflight=1, system="postgresql")
    asyncio.run(_batch_of_two(group, gate))
    assert batches == [["blocker"], ["a", "b"]]
    spans = exporter.get_finished_spans()
    waits = {_parent_name(spans, s): s for s in spans if s.name == "order.batch_wait"}
    writes = [s for s in spans if s.name == "order.batch_write"]
    shared = next(w for w in writes if (w.attributes or {})["orderfast.batch.size"] == 2)
    assert (shared.attributes or {})["db.system.name"] == "postgresql"
    assert shared.parent is not None and shared.parent.span_id == _ctx(waits["a"]).span_id
    assert [link.context.span_id for link in shared.links] == [_ctx(waits["b"]).span_id]
    assert [link.context.span_id for link in waits["b"].links] == [_ctx(shared).span_id]
    assert _ctx(shared).trace_id == _ctx(waits["a"]).trace_id != _ctx(waits["b"]).trace_id


def test_a_batch_follows_its_first_sampled_wait(exporter: InMemorySpanExporter) -> None:
    gate = asyncio.Event()

    async def write(items: Sequence[str]) -> list[str]:
        await gate.wait()
        return [f"{i}!" for i in items]

    group: GroupCommit[str, str] = GroupCommit(write, max_batch=8, inflight=1)

    async def scenario() -> None:
        first = asyncio.create_task(group.submit(["blocker"]))
        await asyncio.sleep(0)

        async def unsampled() -> list[str]:  # a client that decided not to sample its trace
            with tracing.consumer("a", {"traceparent": f"00-{'1' * 32}-{'2' * 16}-00"}, {}):
                return await group.submit(["a"])

        async def sampled() -> list[str]:
            with tracing.span("b"):
                return await group.submit(["b"])

        waiting = [asyncio.create_task(unsampled()), asyncio.create_task(sampled())]
        await asyncio.sleep(0)
        gate.set()
        await first
        assert [await w for w in waiting] == [["a!"], ["b!"]]

    asyncio.run(scenario())
    spans = exporter.get_finished_spans()
    assert not any(s.name == "a" or _ctx(s).trace_id == int("1" * 32, 16) for s in spans), "nothing of a's trace"
    shared = next(
        s for s in spans if s.name == "order.batch_write" and (s.attributes or {})["orderfast.batch.size"] == 2
    )
    wait_b = next(s for s in spans if s.name == "order.batch_wait" and _parent_name(spans, s) == "b")
    assert shared.parent is not None and shared.parent.span_id == _ctx(wait_b).span_id
    assert not shared.links


def _parent_name(spans: Sequence[ReadableSpan], span: ReadableSpan) -> str | None:
    parent = span.parent
    return None if parent is None else next(s.name for s in spans if _ctx(s).span_id == parent.span_id)
