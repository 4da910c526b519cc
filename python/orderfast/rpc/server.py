"""``orderfast serve-grpc``: ``orderfast.v1.Orders`` on grpcio's asyncio server, in a process of its
own beside the HTTP workers, sharing the database, Redis and the rules.

Each call goes through what an HTTP request goes through: the same guard (bearer JWT, API key or a
client certificate; the route's rate-limit policies, as the equivalent ``/v1`` route), the same
services (the create-order body is the HTTP one, so the Rust validator and pricer decide alike), and
the same problems, spelled as ``google.rpc.Status`` (rpc/status.py). Health checking
(``grpc.health.v1``) and server reflection are served too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import grpc
import orjson
from google.rpc import code_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from orderfast import _core, bootstrap
from orderfast.bootstrap import Parts
from orderfast.config import Settings
from orderfast.domain.orders import order_json
from orderfast.http.admission import GradientLimiter
from orderfast.http.auth import Principal
from orderfast.http.errors import problem_for
from orderfast.http.guard import SERVICE_ROLES, RoutePolicies, V1Guard, client_address, common_name
from orderfast.http.paging import decode_cursor, encode_cursor
from orderfast.http.problems import Problem, not_found, overloaded
from orderfast.http.request import checked_idempotency_key
from orderfast.observability import instruments as m
from orderfast.observability.metrics import REGISTRY
from orderfast.rpc.status import status_of
from orderfast.rpc.v1 import orders_pb2, orders_pb2_grpc

log = logging.getLogger("orderfast.grpc")

SERVICE = "orderfast.v1.Orders"
Reply = TypeVar("Reply")


def peer_address(peer: str) -> str | None:
    """grpcio's peer (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, the brackets sometimes
    URL-encoded as ``%5B``/``%5D``) → the address, as the HTTP side names a client."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return unquote(rest).rsplit(":", 1)[0].strip("[]")
    return None


def _unused_app(*args: Any) -> Any:  # the guard's inner app: gRPC calls never reach it
    raise AssertionError("not an ASGI app")


class OrdersService(orders_pb2_grpc.OrdersServicer):
    def __init__(self, parts: Parts) -> None:
        settings = parts.settings
        self._orders = parts.orders
        self._lifecycle = parts.lifecycle
        self._guard = V1Guard(
            _unused_app,
            parts.verifier,
            parts.limits,
            trusted_proxies=settings.trusted_proxies,
            api_keys=parts.api_keys,
            shared=parts.shared_limits,
            cert_header=settings.client_cert_header,
        )
        # The HTTP workers' admission control (ORDERFAST_ADMISSION*), for calls: past the limit a call
        # is shed at once; the health service does not pass through here, so it never is.
        self._limiter = (
            GradientLimiter(
                settings.admission_max, minimum=settings.admission_min, tolerance=settings.admission_tolerance
            )
            if settings.admission
            else None
        )
        # A shed call's answer, made once: under overload it is the one answer given most.
        shed = status_of(overloaded())
        self._shed, self._shed_code = rpc_status.to_status(shed), code_pb2.Code.Name(shed.code)
        self._certificates = settings.tls_client_ca is not None
        # Metadata keys are lower case; "" matches none (no header named).
        self._cert_header = (settings.client_cert_header or "").lower()

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        name: str,
        method: str,
        path: str,
        work: Callable[[Principal], Awaitable[Reply]],
    ) -> Reply:
        """Admits the call ``name`` as the route ``method path`` would be, runs it, answers any
        refusal as the problem's status (a bug, as INTERNAL without its details), and counts it."""
        start = time.perf_counter()
        limiter = self._limiter
        admitted = None if limiter is None else limiter.acquire()
        if limiter is not None and admitted is None:
            _count(name, self._shed_code, start)
            await context.abort_with_status(self._shed)
            raise AssertionError("abort_with_status returns only by raising")
        try:
            who = await self._admit(context, method, path)
            reply = await work(who)
        except Exception as e:
            problem = problem_for(e, method, path)
            if problem is None:
                log.error("unhandled error on %s %s (gRPC)", method, path, exc_info=e)
                problem = Problem(500, "internal", "Internal server error")
            status = status_of(problem)
            _count(name, code_pb2.Code.Name(status.code), start)
            await context.abort_with_status(rpc_status.to_status(status))
            raise AssertionError("abort_with_status returns only by raising") from None
        finally:
            if limiter is not None and admitted is not None:
                limiter.release(admitted)
        _count(name, "OK", start)
        return reply

    async def _admit(self, context: grpc.aio.ServicerContext, method: str, path: str) -> Principal:
        # What the HTTP guard reads from headers, read from metadata by the same rules: a proxy's
        # `x-forwarded-for` and verified-subject header count only from ORDERFAST_TRUSTED_PROXIES.
        authorization = api_key = forwarded = subject = None
        guard = self._guard
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value
            elif key == "x-api-key":
                api_key = value
            elif key == "x-forwarded-for" and guard.trusted:
                forwarded = value
            elif key == self._cert_header:
                subject = value
        peer = peer_address(context.peer())
        ip = client_address(peer, forwarded, guard.trusted)
        known = None
        if authorization is None and api_key is None and self._certificates:
            # Mutual TLS at this server: unlike Granian, grpcio hands over the verified certificate.
            names = context.auth_context().get("x509_common_name") or []
            name = common_name("CN=" + names[0].decode("utf-8", "replace")) if names else None
            if name is not None:
                known = Principal(name, SERVICE_ROLES)
        principal, _ = await guard.admit(method, path, authorization, api_key, subject, peer, ip, known)
        return principal

    # -- the methods

    async def CreateOrder(
        self, request: orders_pb2.CreateOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        async def work(who: Principal) -> orders_pb2.Order:
            key = checked_idempotency_key(request.idempotency_key, "no quote or backslash (idempotency_key)")
            result = await self._orders.create(who.user_id, key, _body(request))
            if result.replayed:
                await context.send_initial_metadata((("idempotent-replayed", "true"),))
            return _message(result.body, orders_pb2.Order)

        return await self._call(context, "CreateOrder", "POST", "/v1/orders", work)

    async def Quote(
        self, request: orders_pb2.QuoteRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.QuoteResponse:
        async def work(who: Principal) -> orders_pb2.QuoteResponse:
            payload = await self._orders.quote(_body(request), who.user_id)
            return _message(payload, orders_pb2.QuoteResponse)

        return await self._call(context, "Quote", "POST", "/v1/quotes", work)

    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        async def work(who: Principal) -> orders_pb2.Order:
            order = await self._orders.document(request.order_id) if _core.is_order_id(request.order_id) else None
            if order is None or (order.customer_id != who.user_id and not who.is_admin):
                raise not_found("order")
            return _message(order.body, orders_pb2.Order)

        return await self._call(context, "GetOrder", "GET", f"/v1/orders/{request.order_id}", work)

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.ListOrdersResponse:
        async def work(who: Principal) -> orders_pb2.ListOrdersResponse:
            limit = request.limit or 20
            if not 1 <= limit <= 100:
                raise Problem(400, "invalid-limit", "Invalid limit", "limit: 1 to 100")
            before = decode_cursor(request.cursor, _core.is_order_id) if request.cursor else None
            rows = await self._orders.list(who.user_id, limit + 1, before)
            page = rows[:limit]
            return orders_pb2.ListOrdersResponse(
                items=[_message(order_json(order), orders_pb2.Order) for order in page],
                next_cursor=encode_cursor(page[-1].id) if len(rows) > limit else "",
            )

        return await self._call(context, "ListOrders", "GET", "/v1/orders", work)

    async def CancelOrder(
        self, request: orders_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.Order:
        async def work(who: Principal) -> orders_pb2.Order:
            if not _core.is_order_id(request.order_id):
                raise not_found("order")
            order = await self._lifecycle.cancel(request.order_id, who.user_id, who.is_admin)
            return _message(order_json(order), orders_pb2.Order)

        return await self._call(context, "CancelOrder", "POST", f"/v1/orders/{request.order_id}/cancel", work)


def _count(name: str, code: str, start: float) -> None:
    m.GRPC_REQUESTS.labels(name, code).inc()
    m.GRPC_DURATION.labels(name).observe(time.perf_counter() - start)


Message = TypeVar("Message")
_FIELDS: dict[type, frozenset[str]] = {}


def _message(document: bytes, cls: type[Message]) -> Message:
    """The HTTP API's JSON document as the proto message of the same fields (fields the message does
    not have are left out, nulls are unset). Keyword construction: ~10 µs for an order of three
    lines, where protobuf's json_format.Parse took ~170 µs."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = frozenset(cls.DESCRIPTOR.fields_by_name)  # type: ignore[attr-defined]
    doc = orjson.loads(document)
    return cls(**{k: v for k, v in doc.items() if v is not None and k in fields})


def _body(request: orders_pb2.CreateOrderRequest | orders_pb2.QuoteRequest) -> bytes:
    """The HTTP API's create-order body, so that one validator and one pricer decide for both."""
    doc: dict[str, Any] = {
        "currency": request.currency,
        "items": [{"sku": item.sku, "quantity": item.quantity} for item in request.items],
    }
    if request.HasField("coupon"):
        doc["coupon"] = request.coupon
    if request.HasField("expected_total"):
        doc["expected_total"] = request.expected_total
    return orjson.dumps(doc)


async def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    check_routes: Callable[[RoutePolicies], None],
    metrics: bool = False,
) -> None:
    """Runs until SIGTERM or SIGINT. SIGTERM drains as the HTTP server does: health turns
    NOT_SERVING at once and calls are still served for ORDERFAST_DRAIN_DELAY seconds (time for a
    balancer or Kubernetes to stop sending), then the listener closes and calls in flight get
    ORDERFAST_SHUTDOWN_TIMEOUT seconds to finish. SIGINT (Ctrl-C) skips the drain. ``metrics``:
    write this process's metrics for the /metrics port the caller serves (ORDERFAST_METRICS_PORT).
    ``check_routes`` refuses a reloaded rate-limit file that names no route of the HTTP API."""
    parts = bootstrap.build(settings)
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            # A message is capped as an HTTP body is (grpcio's default is 4 MiB): larger ones are
            # RESOURCE_EXHAUSTED before they are parsed.
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            *(
                [
                    # GOAWAY after this long, so clients reconnect and reach pods added since.
                    ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age * 1000)),
                    ("grpc.max_connection_age_grace_ms", int(settings.shutdown_timeout * 1000)),
                ]
                if settings.grpc_max_connection_age > 0
                else []
            ),
        ]
    )
    orders_pb2_grpc.add_OrdersServicer_to_server(OrdersService(parts), server)  # type: ignore[no-untyped-call]
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    names = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    address = f"{host}:{port}"
    if settings.tls_cert is not None and settings.tls_key is not None:
        ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca is not None else None
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    await parts.store.open()
    await parts.catalog.refresh()
    tasks = [asyncio.create_task(parts.catalog.refresh_forever(settings.catalog_refresh))]
    live = parts.live_config(check_routes)
    if live.files:
        tasks.append(asyncio.create_task(live.watch_forever()))
    if metrics:
        for method in ("CreateOrder", "GetOrder", "ListOrders", "CancelOrder", "Quote"):
            m.GRPC_REQUESTS.labels(method, "OK")  # exported from the start, at 0
        tasks.append(asyncio.create_task(REGISTRY.write_forever()))
    stop = asyncio.Event()
    drain = settings.drain_delay

    def on_signal(sig: signal.Signals) -> None:
        nonlocal drain
        if sig == signal.SIGINT:
            drain = 0.0
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await server.start()
    for name in ("", SERVICE):
        await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening on %s (%s)", address, "TLS" if settings.tls_cert else "plaintext")
    try:
        await stop.wait()
    finally:
        await checks.enter_graceful_shutdown()
        if stop.is_set() and drain > 0:
            log.info("draining: health NOT_SERVING, calls still served for %g s", drain)
            await asyncio.sleep(drain)
        await server.stop(settings.shutdown_timeout)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if parts.shared_limits is not None:
            await parts.shared_limits.close()
        await parts.store.close()
        if metrics:
            REGISTRY.write()
