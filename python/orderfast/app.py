"""The composition root: settings → store, core objects, services, endpoints, middleware."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orderfast import _core
from orderfast.config import ConfigError, Settings
from orderfast.http.api_keys import ApiKeyEndpoints
from orderfast.http.auth import TokenVerifier, load_public_keys
from orderfast.http.catalog import CatalogEndpoints
from orderfast.http.errors import EXCEPTION_HANDLERS
from orderfast.http.guard import RoutePolicies, V1Guard
from orderfast.http.head import HeadRules
from orderfast.http.health import Health
from orderfast.http.lifecycle import LifecycleEndpoints
from orderfast.http.openapi import OpenApiEndpoints
from orderfast.http.orders import OrderEndpoints
from orderfast.http.quotes import QuoteEndpoints
from orderfast.http.request import BodyLimits
from orderfast.http.security import SecurityHeaders
from orderfast.observability.logging import configure as configure_logging
from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.outbox.relay import Relay
from orderfast.services.api_keys import ApiKeyService
from orderfast.services.catalog import CatalogService
from orderfast.services.cluster_limits import SharedRateLimits
from orderfast.services.lifecycle import LifecycleService
from orderfast.services.orders import OrderService
from orderfast.store import make_store


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
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's ServerErrorMiddleware, so that its 500s carry the headers too; heads
        # that cannot be read one way only never reach it.
        return SecurityHeaders(HeadRules(super().build_middleware_stack()))

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


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app. Granian calls this with no arguments (``--factory``): settings from env."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    store = make_store(settings)
    catalog = _core.Catalog()
    catalog.set_tax(settings.tax_rates, settings.tax_inclusive)
    idempotency = _core.IdempotencyMap(
        ttl=settings.idempotency_ttl,
        capacity=settings.idempotency_capacity,
        max_bytes=settings.idempotency_max_bytes,
    )
    user, ip = settings.ratelimit_user, settings.ratelimit_ip
    policies = RoutePolicies(
        [
            ("user", "user", user.quota, user.period, user.burst, ()),
            ("ip", "ip", ip.quota, ip.period, ip.burst, ()),
            *(
                (p.name, p.key, p.quota.quota, p.quota.period, p.quota.burst, p.routes)
                for p in settings.ratelimit_policies
            ),
        ]
    )
    catalog_service = CatalogService(store, catalog, settings.tax_rates)
    order_service = OrderService(store, catalog, idempotency, catalog_service.refresh)
    lifecycle = LifecycleService(store, payment_timeout=settings.payment_timeout)
    api_keys = ApiKeyService(store)
    shared_limits = None
    if settings.redis_url is not None:
        shared_limits = SharedRateLimits(
            aioredis.Redis.from_url(settings.redis_url.reveal(), socket_timeout=0.25, socket_connect_timeout=0.25),
            policies.spec,
            fail_open=settings.ratelimit_fail_open,
        )
    health = Health(store)
    secret = settings.hs256_secret()
    try:
        public_keys = load_public_keys(settings.jwt_public_keys, settings.jwt_jwks_file)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot load JWT public keys: {e}") from None
    verifier = TokenVerifier(
        None if secret is None else secret.reveal(),
        public_keys=public_keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=settings.jwt_leeway,
        max_lifetime=settings.jwt_max_lifetime,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await catalog_service.refresh()
        tasks = [asyncio.create_task(catalog_service.refresh_forever(settings.catalog_refresh))]
        if settings.sweep_interval > 0:
            tasks.append(asyncio.create_task(lifecycle.sweep_forever(settings.sweep_interval)))
        publisher = None
        in_process = settings.relay_in_process
        if settings.redis_url is not None and (in_process or (in_process is None and store.kind == "sqlite")):
            publisher = RedisStreamsPublisher.from_url(
                settings.redis_url.reveal(), maxlen=settings.stream_maxlen, prefix=settings.stream_prefix
            )
            tasks.append(asyncio.create_task(Relay(store, publisher).run_forever()))
        tune_gc()
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
            if shared_limits is not None:
                await shared_limits.close()
            await store.close()

    body = BodyLimits(settings.max_body_bytes, settings.body_timeout)
    # Starlette tries routes in order, a regex match each: the hot ones first.
    routes = [
        *OrderEndpoints(order_service, body).routes(),
        *QuoteEndpoints(order_service, body).routes(),
        *health.routes(),
        *CatalogEndpoints(catalog_service, body).routes(),
        *ApiKeyEndpoints(api_keys, body).routes(),
        *OpenApiEndpoints().routes(),
        *LifecycleEndpoints(lifecycle, store, [s.reveal() for s in settings.webhook_secrets], body).routes(),
    ]
    _check_policy_routes(policies, routes)
    return OrderfastApp(
        routes=routes,
        middleware=[
            Middleware(
                V1Guard,
                verifier=verifier,
                policies=policies,
                trusted_proxies=settings.trusted_proxies,
                api_keys=api_keys,
                shared=shared_limits,
            ),
        ],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )


def _check_policy_routes(policies: RoutePolicies, routes: Sequence[BaseRoute]) -> None:
    """A finer rate-limit policy whose routes match no route is a typo: refuse to start."""
    matched: set[int] = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                matched |= policies.matches_any(method, route.path)
    for i, name in enumerate(policies.names):
        if policies.patterns[i] and i not in matched:
            raise ConfigError(f"ORDERFAST_RATELIMIT_FILE: policy {name!r} names no route this server has")
