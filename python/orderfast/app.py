"""The ASGI app: routes, middleware and the lifespan, over the parts ``bootstrap`` builds."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orderfast import bootstrap
from orderfast.config import ConfigError, Settings
from orderfast.http.admission import Admission
from orderfast.http.api_keys import ApiKeyEndpoints
from orderfast.http.catalog import CatalogEndpoints
from orderfast.http.docs import OpenApiEndpoints
from orderfast.http.errors import EXCEPTION_HANDLERS
from orderfast.http.guard import RoutePolicies, V1Guard
from orderfast.http.head import HeadRules
from orderfast.http.health import DRAIN_SIGNAL, Health
from orderfast.http.lifecycle import LifecycleEndpoints
from orderfast.http.metrics import MetricsEndpoint, RequestObserver
from orderfast.http.orders import OrderEndpoints
from orderfast.http.quotes import QuoteEndpoints
from orderfast.http.routing import StaticRoutes
from orderfast.observability import tracing
from orderfast.observability.logging import configure as configure_logging
from orderfast.observability.metrics import REGISTRY
from orderfast.outbox.relay import Relay, RelaySettings, outbox_gauges_forever


def tune_gc() -> None:
    """Everything built at start-up lives as long as the process: move it out of the collector's
    sight (gc.freeze), and collect the young generation less often — a request allocates
    thousands of short-lived objects, and under load the default threshold (700) runs a
    collection every few requests."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


GC_GEN0_THRESHOLD = 20_000


class OrderfastApp(Starlette):
    health: Health | None = None
    measured = False
    logged = False
    admission_max: int | None = None  # None: no admission control
    # With read replicas: the position this process's writes reached (store.consistency); None: none.
    read_positions: Callable[[], str | None] | None = None
    admission_tolerance = 8.0
    admission_min = 1

    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's ServerErrorMiddleware, so that its 500s carry the headers too; heads
        # that cannot be read one way only never reach it.
        health = self.health
        draining = (lambda: health.draining) if health is not None else (lambda: False)
        self.router.middleware_stack = StaticRoutes(self.router)
        observer = RequestObserver(
            HeadRules(super().build_middleware_stack()),
            measured=self.measured,
            logged=self.logged,
            draining=draining,
            positions=self.read_positions,
        )
        outer: ASGIApp = observer
        if self.admission_max is not None:
            # Before everything, so that a shed request costs the least it can; it writes the id,
            # the headers and the metrics the layers it skips would have.
            outer = Admission.adaptive(
                outer,
                self.admission_max,
                self.router.routes,
                self.admission_tolerance,
                self.admission_min,
                observer=observer,
                draining=draining,
            )
        return outer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # The exception table has answered a 500 problem and logged the error (frames, no source
        # lines, no SQL). Starlette re-raises it for the server to log, and the server would print
        # a whole traceback: it stops here instead.
        # (try/except rather than contextlib.suppress: free when nothing is raised, on every request.)
        try:  # noqa: SIM105
            await super().__call__(scope, receive, send)
        except Exception:
            pass


def check_tracing(settings: Settings) -> None:
    """Tracing asked for but impossible here (the ``otel`` extra not installed, say): one line at
    start-up rather than a failure in every worker."""
    if settings.tracing and (problem := tracing.problem()) is not None:
        raise ConfigError(f"ORDERFAST_TRACING=true, but {problem}")


def create_app(settings: Settings | None = None, *, trace_exporter: Any = None) -> Starlette:
    """The ASGI app: ``orderfast serve`` hands each worker its settings; a server that calls this
    with no arguments (``granian --factory``) gets them from the environment.

    With tracing on, the lifespan starts it (in the worker, after the fork: building the app starts
    nothing) and stops it, flushing what is queued; ``trace_exporter`` replaces the exporter the
    ``OTEL_*`` variables configure (tests: the SDK's in-memory exporter)."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    check_tracing(settings)
    parts = bootstrap.build(settings)
    store, catalog, lifecycle = parts.store, parts.catalog, parts.lifecycle
    health = Health(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with tracing.started(trace_exporter) if settings.tracing else contextlib.nullcontext():
            async with serving():
                yield

    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[None]:
        await store.open()
        await catalog.refresh()
        tasks = [asyncio.create_task(catalog.refresh_forever(settings.catalog_refresh))]
        if live.files:
            tasks.append(asyncio.create_task(live.watch_forever()))
        # With Temporal, each order's workflow expires it (orderfast worker temporal): no sweeper here.
        if settings.sweep_interval > 0 and settings.temporal_address is None:
            tasks.append(asyncio.create_task(lifecycle.sweep_forever(settings.sweep_interval)))
        publisher = parts.relay_publisher()
        if publisher is not None:
            relay = Relay(store, publisher, RelaySettings(lease_seconds=settings.relay_lease))
            tasks.append(asyncio.create_task(relay.run_forever()))
        if settings.metrics:
            REGISTRY.directory = settings.metrics_dir
            tasks.append(asyncio.create_task(REGISTRY.write_forever()))
            tasks.append(asyncio.create_task(outbox_gauges_forever(store)))
        tune_gc()
        # The drain signal (orderfast/serving.py) turns readiness off; only where signals can be
        # handled (the main thread of a worker process).
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(DRAIN_SIGNAL, health.drain)
        health.started = True
        try:
            yield
        finally:
            health.started = False
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if publisher is not None:
                await publisher.close()
            if parts.shared_limits is not None:
                await parts.shared_limits.close()
            if parts.order_cache is not None:
                await parts.order_cache.close()
            await store.close()
            if settings.metrics:
                REGISTRY.write()  # this worker's last counts, kept by the next scrape

    body = parts.body
    # Starlette tries routes in order, a regex match each: the hot ones first.
    routes = [
        *OrderEndpoints(parts.orders, body).routes(),
        *QuoteEndpoints(parts.orders, body).routes(),
        *health.routes(),
        *CatalogEndpoints(catalog, body).routes(),
        *ApiKeyEndpoints(parts.api_keys, body).routes(),
        *OpenApiEndpoints(lambda: tuple(catalog.tax_rates)).routes(),
        *LifecycleEndpoints(lifecycle, [s.reveal() for s in settings.webhook_secrets], body).routes(),
    ]
    if settings.metrics and settings.metrics_port is None:
        routes += MetricsEndpoint(settings.metrics_dir).routes()
    check_policy_routes(parts.limits.current.policies, routes)
    live = parts.live_config(lambda policies: check_policy_routes(policies, routes))
    app = OrderfastApp(
        routes=routes,
        middleware=[
            Middleware(
                V1Guard,
                verifier=parts.verifier,
                limits=parts.limits,
                trusted_proxies=settings.trusted_proxies,
                api_keys=parts.api_keys,
                shared=parts.shared_limits,
                cert_header=settings.client_cert_header,
            ),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )
    app.health = health
    app.measured = settings.metrics
    app.logged = settings.access_log
    app.admission_max = settings.admission_max if settings.admission else None
    app.admission_tolerance = settings.admission_tolerance
    app.admission_min = settings.admission_min
    if getattr(store, "reads", None) is not None:
        app.read_positions = store.written_position  # type: ignore[attr-defined]
    return app


def check_policy_routes(policies: RoutePolicies, routes: Sequence[BaseRoute]) -> None:
    """A finer rate-limit policy whose routes match no route is a typo: refused at start and on a
    reload (by the HTTP workers, and by serve-grpc, whose calls count as these routes)."""
    matched: set[int] = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                matched |= policies.matches_any(method, route.path)
    for i, name in enumerate(policies.names):
        if policies.patterns[i] and i not in matched:
            raise ConfigError(f"ORDERFAST_RATELIMIT_FILE: policy {name!r} names no route this server has")
