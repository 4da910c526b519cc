"""Tracing: OpenTelemetry spans exported over OTLP — optional, and free when off.

``ORDERFAST_TRACING=true`` (with ``pip install 'orderfast[otel]'``) turns it on. Each process that
serves or relays calls :func:`start` once it is what it will stay — a worker in its lifespan, after
the fork, since the SDK's export thread must belong to it — and :func:`stop` at its end, which
flushes the spans still queued. The standard ``OTEL_*`` variables configure the SDK as usual:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``_HEADERS``,
``_TIMEOUT``; ``OTEL_SERVICE_NAME`` (default ``orderfast``) and ``OTEL_RESOURCE_ATTRIBUTES``;
``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` (default ``parentbased_always_on``: a
client's sampling decision is followed); ``OTEL_BSP_*``; ``OTEL_PROPAGATORS`` for what incoming
requests carry (default W3C ``traceparent`` and baggage); ``OTEL_TRACES_EXPORTER``: ``otlp``
(the default, protobuf over HTTP), ``console`` or ``none``.

Off, orderfast imports nothing of OpenTelemetry, and every hook in the other layers costs one test
of :data:`ENABLED`: they write ``if tracing.ENABLED:`` and call the helpers below only behind it.

Database and Redis calls are traced by the asyncpg and redis instrumentations, as children of the
span in progress; one made outside any traced operation (the catalog refresh, the relay polling
an empty outbox, the gauges) starts no trace of its own. Spans never hold an exception's message
or stack (they may quote SQL or row data): a failed step carries ``error.type`` and an error status,
and the exporter is handed the instrumentations' spans without them too.

A leaf, like the rest of ``observability/``: it imports nothing of orderfast.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

# Read on every hot path: all tracing costs when it is off.
ENABLED = False

SERVICE_NAME = "orderfast"
# The modules tracing needs, and the distribution of each (all in the ``otel`` extra).
REQUIRED = {
    "opentelemetry.sdk.trace": "opentelemetry-sdk",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter": "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry.instrumentation.asyncpg": "opentelemetry-instrumentation-asyncpg",
    "opentelemetry.instrumentation.redis": "opentelemetry-instrumentation-redis",
}
EXPORTERS = ("otlp", "console", "none")
# Probes and scrapes: polled every few seconds by machines, traced they would drown the rest.
UNTRACED_PATHS = frozenset({"/livez", "/readyz", "/startupz", "/metrics"})
# The W3C fields an outbox envelope's ``trace`` may hold.
TRACE_FIELDS = ("traceparent", "tracestate")


def problem() -> str | None:
    """What keeps tracing from starting in this environment (a missing package, an exporter this
    build cannot use), in a few words; None when it can. Imports the SDK, so only call it when
    tracing is wanted."""
    for module, distribution in REQUIRED.items():
        try:
            importlib.import_module(module)
        except ImportError:
            return f"{distribution} is not installed (pip install 'orderfast[otel]')"
    exporter = _exporter_name()
    if exporter not in EXPORTERS:
        return f"OTEL_TRACES_EXPORTER={exporter!r} is not supported (one of: {', '.join(EXPORTERS)})"
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if exporter == "otlp" and protocol not in (None, "", "http/protobuf"):
        return f"OTLP protocol {protocol!r} is not supported: orderfast exports http/protobuf"
    return None


class _Otel:
    """What the helpers use of OpenTelemetry, imported once by :func:`start`."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        from opentelemetry.trace.status import Status, StatusCode

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("orderfast", _version())
        self.trace = trace
        self.context = context
        self.extract = propagate.extract
        self.w3c = TraceContextTextMapPropagator()
        self.Link = trace.Link
        self.SpanKind = trace.SpanKind
        self._status, self._error_code = Status, StatusCode.ERROR
        self.instrumentors: list[Any] = []

    def error(self, description: str) -> Any:
        return self._status(self._error_code, description)

    def current_with(self, span: Span, parent: Context | None) -> Context:
        """``parent`` (or the context in progress) with ``span`` in it. A span not sampled also
        turns the instrumentations off beneath it: its queries would not be recorded anyway, and an
        instrumented call costs several microseconds even then."""
        ctx: Context = self.trace.set_span_in_context(span, parent)
        if not span.is_recording():
            ctx = self.context.set_value(self.context._SUPPRESS_INSTRUMENTATION_KEY, True, ctx)
        return ctx


_otel: _Otel | None = None


def start(exporter: SpanExporter | None = None) -> None:
    """Turns tracing on in this process: a tracer provider built from the ``OTEL_*`` variables,
    asyncpg and redis instrumented. ``exporter`` (tests: the SDK's ``InMemorySpanExporter``)
    replaces the configured one and receives each span as it ends. Starting again restarts."""
    global ENABLED, _otel
    if _otel is not None:
        stop()
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=_resource(), sampler=_sampler())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(_scrubbing(exporter)))
    else:
        configured = _configured_exporter()
        if configured is not None:
            provider.add_span_processor(BatchSpanProcessor(_scrubbing(configured)))
    otel = _Otel(provider)
    _instrument(otel)
    _otel = otel
    ENABLED = True


def stop() -> None:
    """Turns tracing off: the instrumentations removed, the spans still queued exported (the
    provider shut down). Safe to call when tracing is off."""
    global ENABLED, _otel
    otel, _otel = _otel, None
    ENABLED = False
    if otel is None:
        return
    for instrumentor in otel.instrumentors:
        instrumentor.uninstrument()
    otel.provider.shutdown()


@contextlib.contextmanager
def started(exporter: SpanExporter | None = None) -> Iterator[None]:
    """:func:`start` … :func:`stop` around a block."""
    start(exporter)
    try:
        yield
    finally:
        stop()


def _exporter_name() -> str:
    return os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"


def _configured_exporter() -> SpanExporter | None:
    name = _exporter_name()
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*


def _scrubbing(exporter: SpanExporter) -> SpanExporter:
    """``exporter``, handed spans without exceptions' messages and stacks: the instrumentations
    record them, and a database error's message may quote row values (``DETAIL: Key (sku)=(…)``).
    What stays: the type (``exception.type``) and the error status."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace.status import Status

    hidden = ("exception.message", "exception.stacktrace")

    def needs(span: ReadableSpan) -> bool:
        return any(e.name == "exception" for e in span.events) or ":" in (span.status.description or "")

    def scrubbed(span: ReadableSpan) -> ReadableSpan:
        events = [
            Event(e.name, {k: v for k, v in (e.attributes or {}).items() if k not in hidden}, e.timestamp)
            if e.name == "exception"
            else e
            for e in span.events
        ]
        status = span.status
        if status.description:
            status = Status(status.status_code, status.description.split(":", 1)[0])
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=span.attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    class Scrubbing(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return exporter.export([scrubbed(s) if needs(s) else s for s in spans])

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return exporter.force_flush(timeout_millis)

    return Scrubbing()


def _version() -> str:
    try:
        return metadata.version("orderfast")
    except metadata.PackageNotFoundError:
        return "unknown"


def _resource() -> Any:
    """The SDK's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, the SDK's own), named
    ``orderfast`` unless those name it."""
    from opentelemetry.sdk.resources import Resource

    # (process.pid: the worker, one of several behind one port)
    resource = Resource.create({"service.version": _version(), "process.pid": os.getpid()})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


def _sampler() -> Any:
    """The configured sampler (OTEL_TRACES_SAMPLER), except that a client call — a query, a Redis
    command — with no span around it starts no trace."""
    from opentelemetry.sdk.trace import sampling
    from opentelemetry.trace import SpanKind, get_current_span

    configured: sampling.Sampler = sampling._get_from_env_or_default()
    drop = sampling.SamplingResult(sampling.Decision.DROP)

    class NoOrphanClients(sampling.Sampler):
        def should_sample(
            self,
            parent_context: Context | None,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> sampling.SamplingResult:
            if kind is SpanKind.CLIENT and not get_current_span(parent_context).get_span_context().is_valid:
                return drop
            return configured.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"NoOrphanClients{{{configured.get_description()}}}"

    return NoOrphanClients()


def _instrument(otel: _Otel) -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    kinds: list[Any] = [AsyncPGInstrumentor, RedisInstrumentor]  # (untyped)
    for kind in kinds:
        instrumentor = kind()  # one per process (the instrumentors are singletons)
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=otel.provider)
            otel.instrumentors.append(instrumentor)


# -- helpers for the hooks: each is called only when ENABLED ----------------------------------------


def _get() -> _Otel:
    if _otel is None:
        raise RuntimeError("tracing is not started")
    return _otel


def _qualname(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def failed(span: Span, error: BaseException) -> None:
    """Marks ``span`` failed by ``error``: its type, never its message."""
    kind = _qualname(type(error))
    span.set_attribute("error.type", kind)
    span.set_status(_get().error(kind))


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: Context | None = None,
    links: Sequence[Context | None] = (),
    kind: str = "internal",
) -> Step:
    """A span around a ``with`` block, current inside it (what the block calls is its child): a
    child of the span in progress, or of ``parent``; ``links`` to other spans' contexts. Inside a
    trace that is not sampled, no span: the steps of a request are recorded when the request is."""
    otel = _get()
    if parent is None:
        current = otel.trace.get_current_span()
        if not current.is_recording() and current.get_span_context().is_valid:
            return Step(current, None)
    s = otel.tracer.start_span(
        name,
        parent,
        getattr(otel.SpanKind, kind.upper()),
        attributes,
        _links(otel, links) if links else None,
    )
    return Step(s, otel.context.attach(otel.current_with(s, parent)))


class Step:
    """A started span, current until the ``with`` block it opens ends (an exception that leaves
    the block marks it failed)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span, token: object) -> None:
        self._span = span
        self._token = token

    def __enter__(self) -> Span:
        return self._span

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if self._token is None:  # not recorded
            return
        if error is not None:
            failed(self._span, error)
        _get().context.detach(self._token)
        self._span.end()


def batch(name: str, attributes: Mapping[str, Any], members: Sequence[Context | None]) -> Step:
    """A span for work done once for several traced operations (a group commit's transaction):
    the child of the first member whose trace is sampled, linked to the others — and each of
    those linked back to it."""
    otel = _get()
    members = [m for m in members if m is not None]
    recorded = [m for m in members if otel.trace.get_current_span(m).is_recording()]
    parent = (recorded or members or [None])[0]
    others = [m for m in recorded if m is not parent]
    step = span(name, attributes, parent=parent if parent is not None else otel.context.Context(), links=others)
    for member in others:
        link(member, step._span)
    return step


def _links(otel: _Otel, contexts: Sequence[Context | None]) -> list[Any] | None:
    found = []
    for ctx in contexts:
        if ctx is not None:
            linked = otel.trace.get_current_span(ctx).get_span_context()
            if linked.is_valid:
                found.append(otel.Link(linked))
    return found or None


def current() -> Context:
    """The context in progress (to parent or link later work to it)."""
    ctx: Context = _get().context.get_current()
    return ctx


def link(ctx: Context | None, to: Span) -> None:
    """Adds a link from the span of ``ctx`` (still in progress) to ``to``."""
    if ctx is None:
        return
    linked = to.get_span_context()
    if linked.is_valid:
        _get().trace.get_current_span(ctx).add_link(linked)


def carrier() -> dict[str, str] | None:
    """The W3C trace context of the span in progress (``traceparent``, and ``tracestate`` when it
    has one), to store with what this request makes; None outside any span."""
    out: dict[str, str] = {}
    _get().w3c.inject(out)
    return out or None


def extract(carrier: Mapping[str, str] | None) -> Context | None:
    """The context a stored :func:`carrier` names (None when it names none)."""
    if not carrier:
        return None
    otel = _get()
    ctx = otel.w3c.extract({k: str(v) for k, v in carrier.items() if k in TRACE_FIELDS})
    return ctx if otel.trace.get_current_span(ctx).get_span_context().is_valid else None


def ids() -> tuple[str, str] | None:
    """(trace id, span id) of the span in progress, in hex, for log lines."""
    otel = _otel
    if otel is None:
        return None
    ctx = otel.trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


class ServerSpan:
    """One HTTP request's SERVER span, current while the request is handled."""

    __slots__ = ("_method", "_span", "_token")

    def __init__(self, span: Span, token: object, method: str) -> None:
        self._span = span
        self._token = token
        self._method = method

    def finish(self, route: str | None, status: int) -> None:
        """Named ``METHOD /route/{template}`` once routing has told the route (the method alone
        when no route matched); an error when the status is 5xx."""
        otel = _get()
        s = self._span
        if route is not None:
            s.update_name(f"{self._method} {route}")
            s.set_attribute("http.route", route)
        s.set_attribute("http.response.status_code", status)
        if status >= 500:
            s.set_status(otel.error(str(status)))
        otel.context.detach(self._token)
        s.end()


def server(scope: Mapping[str, Any], request_id: str) -> ServerSpan | None:
    """Starts an HTTP request's SERVER span, continuing the client's trace when its headers carry
    one (``traceparent``, or what OTEL_PROPAGATORS names); None for probes and scrapes."""
    path = scope["path"]
    if path in UNTRACED_PATHS:
        return None
    otel = _get()
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    parent = otel.extract(headers)
    method = scope["method"]
    s = otel.tracer.start_span(
        method,
        parent,
        otel.SpanKind.SERVER,
        {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scope.get("scheme", "http"),
            "orderfast.request_id": request_id,
        },
    )
    token = otel.context.attach(otel.current_with(s, parent))
    return ServerSpan(s, token, method)


def producer(name: str, carrier: Mapping[str, str] | None, attributes: Mapping[str, Any]) -> Span:
    """A PRODUCER span (not made current), the child of the context ``carrier`` names — the
    request that made the message — or else of the span in progress; linked to the span in
    progress (the batch that publishes it), and that span back to it."""
    otel = _get()
    parent = extract(carrier)
    batch = otel.trace.get_current_span()
    links = [otel.Link(batch.get_span_context())] if parent is not None and batch.get_span_context().is_valid else None
    s = otel.tracer.start_span(name, parent, otel.SpanKind.PRODUCER, dict(attributes), links)
    if parent is not None:
        link(otel.context.get_current(), s)
    return s


def end(span: Span, error: BaseException | None = None, attributes: Mapping[str, Any] | None = None) -> None:
    if attributes:
        span.set_attributes(dict(attributes))
    if error is not None:
        failed(span, error)
    span.end()


def consumer(name: str, carrier: Mapping[str, str] | None, attributes: Mapping[str, Any]) -> Any:
    """A CONSUMER span around handling a message: the child of the context ``carrier`` names (the
    request that made it), so the consumer continues that trace; a trace of its own without one."""
    parent = extract(carrier)
    if parent is None:
        parent = _get().context.Context()  # not the span in progress: a new trace
    return span(name, attributes, parent=parent, kind="consumer")
