"""The composition root: settings → store, publisher, core objects, services, guards.

The app factory (``app.create_app``) and every CLI command build what they need here and nowhere
else; no module keeps state of its own. Building writes nothing to disk and starts no task: the
app's lifespan and the CLI commands open, run and close what this returns.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orderfast import _core
from orderfast.config import (
    ConfigError,
    Flags,
    RatePolicy,
    Settings,
    load_flags,
    load_rate_policies,
    load_tax_table,
)
from orderfast.http.auth import TokenVerifier, load_public_keys
from orderfast.http.guard import LiveRateLimits, RoutePolicies
from orderfast.http.request import BodyDeadlines, BodyLimits
from orderfast.observability import instruments as m
from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.resilience import deadline
from orderfast.resilience.breaker import Breaker
from orderfast.services.api_keys import ApiKeyService
from orderfast.services.catalog import CatalogService
from orderfast.services.cluster_limits import SharedRateLimits
from orderfast.services.lifecycle import LifecycleService
from orderfast.services.live_config import LiveConfig, LiveFile
from orderfast.services.order_cache import OrderCache
from orderfast.services.orders import OrderService
from orderfast.store import make_store
from orderfast.store.base import Store


@dataclass(frozen=True, slots=True)
class Parts:
    """Everything one worker process serves with."""

    settings: Settings
    store: Store
    catalog: CatalogService
    orders: OrderService
    lifecycle: LifecycleService
    api_keys: ApiKeyService
    verifier: TokenVerifier
    limits: LiveRateLimits
    shared_limits: SharedRateLimits | None
    body: BodyLimits
    order_cache: OrderCache | None = None
    flags: LiveFile[Flags] | None = None
    taxes: LiveFile[dict[str, str]] | None = None

    def live_config(self, check_routes: Callable[[RoutePolicies], None]) -> LiveConfig:
        """The files every worker reads again when they change (flags, tax table, rate-limit
        policies); ``check_routes`` refuses policies that name no route the app serves."""
        files: list[LiveFile[Any]] = [f for f in (self.flags, self.taxes) if f is not None]
        source = self.settings.ratelimit_file
        if source is not None:
            settings, limits = self.settings, self.limits

            def load(path: Path) -> RoutePolicies:
                policies = route_policies(settings, load_rate_policies(path))
                check_routes(policies)
                return policies

            files.append(
                LiveFile("ratelimits", source.path, limits.current.policies, load, limits.replace, _policy_names)
            )
        return LiveConfig(files)

    def relay_publisher(self) -> RedisStreamsPublisher | None:
        """The publisher of the in-process relay, when this process runs one (by default exactly
        when the store is SQLite and Redis is configured)."""
        in_process = self.settings.relay_in_process
        if self.settings.redis_url is None or not (in_process or (in_process is None and self.store.kind == "sqlite")):
            return None
        return publisher(self.settings)


def _read_gauges(store: Store, catalog: CatalogService, idempotency: _core.IdempotencyMap) -> None:
    """The gauges this process reads when it writes its metrics, rather than tracks."""
    m.CATALOG_VERSION.read = lambda: [((), catalog.version)]
    m.CATALOG_AGE.read = lambda: [((), time.monotonic() - catalog.refreshed_at)]
    m.IDEMPOTENCY_MAP.read = lambda: [(("entries",), len(idempotency)), (("bytes",), idempotency.nbytes)]
    m.RSS.read = _resident_memory
    if store.kind == "postgres":  # (not isinstance: importing the PostgreSQL store costs SQLite ~45 ms)
        m.DB_POOL.read = store.pool_readings  # type: ignore[attr-defined]
        m.DB_POOL_WAITING.read = store.waiting  # type: ignore[attr-defined]


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident_memory() -> list[tuple[tuple[str, ...], float]]:
    with open("/proc/self/statm") as f:  # Linux; elsewhere the reading fails and is left out
        resident_pages = int(f.read().split()[1])
    return [((str(os.getpid()),), resident_pages * _PAGE)]


def feature_flags(
    settings: Settings, catalog: _core.Catalog, shared: SharedRateLimits | None
) -> LiveFile[Flags] | None:
    """The feature flags (``ORDERFAST_FLAGS_FILE``), applied now; the file to watch, if there is one."""

    def apply(flags: Flags) -> None:
        catalog.set_coupons_enabled(flags.coupons)
        fail_closed = flags.ratelimit_fail_closed
        if fail_closed is None:
            fail_closed = not settings.ratelimit_fail_open
        if shared is not None:
            shared.set_fail_open(not fail_closed)
        effective[:] = [(("coupons",), float(flags.coupons)), (("ratelimit_fail_closed",), float(fail_closed))]

    effective: list[tuple[tuple[str, ...], float]] = []
    m.FEATURE_FLAG.read = lambda: list(effective)
    path = settings.flags_file
    flags = load_flags(path) if path is not None else Flags()
    apply(flags)
    return None if path is None else LiveFile("flags", path, flags, load_flags, apply, _flag_values)


def _flag_values(flags: Flags) -> str:
    return ", ".join(f"{name}={value}" for name, value in flags.shown().items())


def _policy_names(policies: RoutePolicies) -> str:
    return "policies " + ", ".join(policies.names)


def tax_table(settings: Settings, core: _core.Catalog, catalog: CatalogService) -> LiveFile[dict[str, str]] | None:
    """The tax table (``ORDERFAST_TAX_RATES`` or ``ORDERFAST_TAX_FILE``), set now; the file to watch,
    if there is one. A new table must keep every class a product names: a product whose class has
    gone would price untaxed without a word."""

    def apply(rates: dict[str, str]) -> None:
        core.set_tax(rates, settings.tax_inclusive)
        catalog.tax_rates = dict(rates)

    def load(path: Path) -> dict[str, str]:
        rates = load_tax_table(path)
        missing = [c for c in core.tax_classes() if c not in rates]
        if missing:
            raise ConfigError(
                f"ORDERFAST_TAX_FILE ({path}): products still name the tax class {', '.join(missing)}; "
                "keep it, or move those products to another class first"
            )
        return rates

    apply(settings.taxes)
    source = settings.tax_file
    return None if source is None else LiveFile("taxes", source.path, dict(source.rates), load, apply, _rates)


def _rates(rates: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}%" for k, v in rates.items()) or "no tax classes"


def build(settings: Settings) -> Parts:
    deadline.configure(settings.request_timeout)
    store = make_store(settings)
    core_catalog = _core.Catalog()
    idempotency = _core.IdempotencyMap(
        ttl=settings.idempotency_ttl,
        capacity=settings.idempotency_capacity,
        max_bytes=settings.idempotency_max_bytes,
    )
    catalog = CatalogService(store, core_catalog)
    taxes = tax_table(settings, core_catalog, catalog)
    _read_gauges(store, catalog, idempotency)
    policies = route_policies(settings, settings.ratelimit_policies)
    shared_limits = None
    if settings.redis_url is not None:
        import redis.asyncio as aioredis  # here: ~130 ms of import a server without Redis does not pay

        shared_limits = SharedRateLimits(
            aioredis.Redis.from_url(settings.redis_url.reveal(), socket_timeout=0.25, socket_connect_timeout=0.25),
            policies.spec,
            fail_open=settings.ratelimit_fail_open,
            breaker=Breaker("redis-ratelimit", failures=settings.breaker_failures, cooldown=settings.breaker_cooldown),
        )
    flags = feature_flags(settings, core_catalog, shared_limits)
    order_cache = None
    if settings.read_cache and settings.redis_url is not None:
        import redis.asyncio as aioredis

        order_cache = OrderCache(
            aioredis.Redis.from_url(settings.redis_url.reveal(), socket_timeout=0.25, socket_connect_timeout=0.25),
            ttl=settings.read_cache_ttl,
            breaker=Breaker("redis-cache", failures=settings.breaker_failures, cooldown=settings.breaker_cooldown),
        )
    return Parts(
        settings=settings,
        store=store,
        catalog=catalog,
        orders=OrderService(
            store, core_catalog, idempotency, catalog.catch_up, order_cache, catalog_version=lambda: catalog.version
        ),
        lifecycle=LifecycleService(store, payment_timeout=settings.payment_timeout, cache=order_cache),
        api_keys=ApiKeyService(store),
        verifier=token_verifier(settings),
        limits=LiveRateLimits(policies),
        shared_limits=shared_limits,
        body=BodyLimits(settings.max_body_bytes, settings.body_timeout, BodyDeadlines()),
        order_cache=order_cache,
        flags=flags,
        taxes=taxes,
    )


def route_policies(settings: Settings, finer: Sequence[RatePolicy]) -> RoutePolicies:
    """The defaults (``user``, ``ip``) and the ``finer`` policies of the rate-limit file."""
    user, ip = settings.ratelimit_user, settings.ratelimit_ip
    return RoutePolicies(
        [
            ("user", "user", user.quota, user.period, user.burst, ()),
            ("ip", "ip", ip.quota, ip.period, ip.burst, ()),
            *((p.name, p.key, p.quota.quota, p.quota.period, p.quota.burst, p.routes) for p in finer),
        ]
    )


def token_verifier(settings: Settings) -> TokenVerifier:
    secret = settings.hs256_secret()
    try:
        public_keys = load_public_keys(settings.jwt_public_keys, settings.jwt_jwks_file)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"cannot load JWT public keys: {e}") from None
    previous = [s.reveal() for s in settings.jwt_previous_secrets]
    if any(len(s.encode()) < 32 for s in previous):
        raise ConfigError("each of ORDERFAST_JWT_PREVIOUS_SECRETS must be at least 32 bytes")
    if previous and secret is None:
        raise ConfigError("ORDERFAST_JWT_PREVIOUS_SECRETS needs ORDERFAST_JWT_SECRET, the current secret")
    return TokenVerifier(
        None if secret is None else secret.reveal(),
        previous_secrets=previous,
        public_keys=public_keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=settings.jwt_leeway,
        max_lifetime=settings.jwt_max_lifetime,
    )


def publisher(settings: Settings) -> RedisStreamsPublisher:
    if settings.redis_url is None:
        raise ConfigError("events are published to Redis Streams: set ORDERFAST_REDIS_URL")
    return RedisStreamsPublisher.from_url(
        settings.redis_url.reveal(),
        maxlen=settings.stream_maxlen,
        prefix=settings.stream_prefix,
        timeout=settings.request_timeout,
    )


@contextlib.asynccontextmanager
async def opened_store(settings: Settings, *, check_schema: bool = True, budget: bool = True) -> AsyncIterator[Store]:
    """The settings' store, open for the duration of a CLI command. ``budget``: each call bounded
    by the request budget (the relay, the sweeper); False for the long ones (migrate, reconcile)."""
    deadline.configure(settings.request_timeout if budget else None)
    store = make_store(settings, budget=budget)
    await store.open(check_schema=check_schema)
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def opened_publisher(settings: Settings, *, required: bool) -> AsyncIterator[RedisStreamsPublisher | None]:
    """The settings' publisher (None when Redis is not configured and not ``required``), closed after."""
    if settings.redis_url is None and not required:
        yield None
        return
    pub = publisher(settings)
    try:
        yield pub
    finally:
        await pub.close()
