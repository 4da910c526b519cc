"""The gRPC ingress end to end: a real ``orderfast serve-grpc`` beside a real HTTP server on the
same database (both stores), called by a real gRPC client. The same orders, rules, roles, limits
and refusals as the HTTP API; health checking, reflection, and mutual TLS naming the caller."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from orderfast.rpc.v1 import orders_pb2 as pb
from orderfast.rpc.v1 import orders_pb2_grpc
from tests.e2e.certs import CertificateAuthority
from tests.e2e.conftest import Server, free_port
from tests.e2e.test_flags import until
from tests.e2e.test_orders import new_sku

QUOTE_POLICY = '[policies.quotes]\nlimit = "3/3600"\nburst = 3\nkey = "user"\nroutes = ["POST /v1/quotes"]\n'


class GrpcServer:
    def __init__(self, env: dict[str, str], workdir: Path, port: int | None = None, *args: str) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = workdir / f"grpc-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orderfast", "serve-grpc", "--port", str(self.port), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_serving(self, channel: grpc.Channel) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=30)


@contextlib.contextmanager
def grpc_serving(env: dict[str, str], workdir: Path, *args: str) -> Iterator[tuple[GrpcServer, grpc.Channel]]:
    """A serve-grpc of its own for one test, serving when the block starts; stopped (SIGTERM) after
    it unless the block stopped it, and it must have exited cleanly."""
    g = GrpcServer(env, workdir, None, *args)
    channel = grpc.insecure_channel(g.address)
    try:
        g.wait_serving(channel)
        yield g, channel
    finally:
        channel.close()
        code = g.stop() if g.proc.poll() is None else g.proc.returncode
    assert code == 0, g.log.read_text()


@pytest.fixture(scope="module")
def rpc(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, GrpcServer, grpc.Channel]]:
    workdir = tmp_path_factory.mktemp("grpc")
    policies = workdir / "limits.toml"
    policies.write_text(QUOTE_POLICY)
    with grpc_serving({**server.env, "ORDERFAST_RATELIMIT_FILE": str(policies)}, workdir) as (g, channel):
        yield server, g, channel


def auth(server: Server, sub: str, *roles: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {server.token(sub, *roles)}"),)


def refusal(e: grpc.RpcError) -> tuple[grpc.StatusCode, str, list[tuple[str, str]], dict[str, str], int | None]:
    """(code, ErrorInfo.reason, [(field, reason)] of BadRequest, ErrorInfo.metadata, RetryInfo seconds)."""
    status = rpc_status.from_call(e)
    assert status is not None, "a refusal carries a google.rpc.Status"
    reason, violations, meta, retry = "", [], {}, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "orderfast"
            reason, meta = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.reason) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info_r = error_details_pb2.RetryInfo()
            detail.Unpack(info_r)
            retry = info_r.retry_delay.seconds
    return e.code(), reason, violations, meta, retry


def create(stub: orders_pb2_grpc.OrdersStub, md: object, sku: str, quantity: int = 1, key: str | None = None):  # type: ignore[no-untyped-def]
    return stub.CreateOrder.with_call(
        pb.CreateOrderRequest(
            idempotency_key=key or uuid.uuid4().hex, currency="USD", items=[pb.Item(sku=sku, quantity=quantity)]
        ),
        metadata=md,
    )


def test_orders_over_grpc_are_the_orders_of_the_http_api(rpc: tuple[Server, GrpcServer, grpc.Channel]) -> None:
    server, _, channel = rpc
    stub = orders_pb2_grpc.OrdersStub(channel)
    sku = new_sku(server, price="12.50", stock=10)
    customer = f"grpc-{uuid.uuid4().hex[:8]}"
    md = auth(server, customer)
    quote = stub.Quote(pb.QuoteRequest(currency="USD", items=[pb.Item(sku=sku, quantity=2)]), metadata=md)
    assert (quote.total, quote.lines[0].unit_price) == ("25.00", "12.50")
    order, call = create(stub, md, sku, 2, key="grpc-key-1")
    assert (order.customer_id, order.status, order.total) == (customer, "PENDING_PAYMENT", "25.00")
    assert ("idempotent-replayed", "true") not in tuple(call.initial_metadata())
    again, call = create(stub, md, sku, 2, key="grpc-key-1")
    assert again == order and ("idempotent-replayed", "true") in tuple(call.initial_metadata())
    # The very order the HTTP API serves, and its stock taken once.
    with server.client(customer) as c:
        assert c.get(f"/v1/orders/{order.id}").json()["total"] == "25.00"
        assert c.get(f"/v1/products/{sku}").json()["stock"] == 8
    assert stub.GetOrder(pb.GetOrderRequest(order_id=order.id), metadata=md) == order
    listed = stub.ListOrders(pb.ListOrdersRequest(limit=10), metadata=md)
    assert [o.id for o in listed.items] == [order.id] and listed.next_cursor == ""
    canceled = stub.CancelOrder(pb.CancelOrderRequest(order_id=order.id), metadata=md)
    assert canceled.status == "CANCELED" and canceled.cancel_reason == "customer"


def test_refusals_are_statuses_with_the_problems_details(rpc: tuple[Server, GrpcServer, grpc.Channel]) -> None:
    server, _, channel = rpc
    stub = orders_pb2_grpc.OrdersStub(channel)
    sku = new_sku(server, stock=1)
    md = auth(server, f"grpc-{uuid.uuid4().hex[:8]}")
    with pytest.raises(grpc.RpcError) as bad:
        stub.CreateOrder(
            pb.CreateOrderRequest(idempotency_key="k", currency="USD", items=[pb.Item(sku=sku, quantity=0)]),
            metadata=md,
        )
    assert refusal(bad.value)[:3] == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "validation-error",
        [("/items/0/quantity", "out_of_range")],
    )
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Quote(pb.QuoteRequest(currency="USD", items=[pb.Item(sku="NO-SUCH-SKU", quantity=1)]), metadata=md)
    assert refusal(unknown.value)[2] == [("/items/0/sku", "unknown_sku")]
    with pytest.raises(grpc.RpcError) as anonymous:
        stub.ListOrders(pb.ListOrdersRequest())
    assert refusal(anonymous.value)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
    with pytest.raises(grpc.RpcError) as key:
        stub.CreateOrder(pb.CreateOrderRequest(currency="USD", items=[pb.Item(sku=sku, quantity=1)]), metadata=md)
    assert refusal(key.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency-key-invalid")
    with pytest.raises(grpc.RpcError) as quoted:  # the HTTP rule: a key that HTTP could not send back
        stub.CreateOrder(
            pb.CreateOrderRequest(idempotency_key='a"b', currency="USD", items=[pb.Item(sku=sku, quantity=1)]),
            metadata=md,
        )
    assert refusal(quoted.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "idempotency-key-invalid")
    order, _ = create(stub, md, sku)
    with pytest.raises(grpc.RpcError) as short:
        create(stub, md, sku)
    code, reason, _, meta, _ = refusal(short.value)
    assert (code, reason, meta) == (grpc.StatusCode.FAILED_PRECONDITION, "out-of-stock", {"sku": sku})
    other = auth(server, f"grpc-other-{uuid.uuid4().hex[:6]}")
    for call in (stub.GetOrder, stub.CancelOrder):  # someone else's order does not exist for them
        with pytest.raises(grpc.RpcError) as hidden:
            call(
                pb.GetOrderRequest(order_id=order.id)
                if call is stub.GetOrder
                else pb.CancelOrderRequest(order_id=order.id),
                metadata=other,
            )
        assert refusal(hidden.value)[:2] == (grpc.StatusCode.NOT_FOUND, "not-found")


def fourth_quote_refused(server: Server, channel: grpc.Channel, who: str) -> grpc.RpcError:
    """Three quotes by a new user go through (QUOTE_POLICY allows three an hour); the fourth's error."""
    stub = orders_pb2_grpc.OrdersStub(channel)
    md = auth(server, f"{who}-{uuid.uuid4().hex[:6]}")
    request = pb.QuoteRequest(currency="USD", items=[pb.Item(sku="SKU-1", quantity=1)])
    for _ in range(3):
        stub.Quote(request, metadata=md)
    with pytest.raises(grpc.RpcError) as limited:
        stub.Quote(request, metadata=md)
    return limited.value


def test_rate_limits_are_the_routes_limits(rpc: tuple[Server, GrpcServer, grpc.Channel]) -> None:
    server, _, channel = rpc
    code, reason, _, meta, retry = refusal(fourth_quote_refused(server, channel, "grpc-quoter"))
    assert (code, reason, meta["violated-policies"]) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota-exceeded", "quotes")
    assert retry is not None and retry >= 1


def test_health_checking_and_reflection(rpc: tuple[Server, GrpcServer, grpc.Channel]) -> None:
    _, _, channel = rpc
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "orderfast.v1.Orders"):
        assert (
            health.Check(health_pb2.HealthCheckRequest(service=service)).status
            == health_pb2.HealthCheckResponse.SERVING
        )
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert {"orderfast.v1.Orders", "grpc.health.v1.Health"} <= names


@pytest.fixture(scope="module")
def rpc_mtls(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GrpcServer, CertificateAuthority, Path]]:
    workdir = tmp_path_factory.mktemp("grpc-mtls")
    ca = CertificateAuthority(workdir, "svc")
    leaf = ca.issue("localhost", server=True)
    env = {
        **server.env,
        "ORDERFAST_TLS_CERT": str(leaf.cert),
        "ORDERFAST_TLS_KEY": str(leaf.key),
        "ORDERFAST_TLS_CLIENT_CA": str(ca.path),
    }
    g = GrpcServer(env, workdir)
    client = ca.issue("warehouse-svc")
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.path.read_bytes(),
        private_key=client.key.read_bytes(),
        certificate_chain=client.cert.read_bytes(),
    )
    channel = grpc.secure_channel(g.address, creds, options=[("grpc.ssl_target_name_override", "localhost")])
    try:
        g.wait_serving(channel)
        yield g, ca, workdir
    finally:
        channel.close()
        g.stop()


def test_a_client_certificate_is_a_service_principal(
    server: Server, rpc_mtls: tuple[GrpcServer, CertificateAuthority, Path]
) -> None:
    g, ca, _ = rpc_mtls
    client = ca.issue("warehouse-svc")
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.path.read_bytes(),
        private_key=client.key.read_bytes(),
        certificate_chain=client.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(g.address, creds, options=options) as channel:
        order, _ = create(orders_pb2_grpc.OrdersStub(channel), (), new_sku(server, stock=5))
        assert order.customer_id == "warehouse-svc", "the certificate's CN is the principal"
    anonymous = grpc.ssl_channel_credentials(root_certificates=ca.path.read_bytes())
    with grpc.secure_channel(g.address, anonymous, options=options) as channel, pytest.raises(grpc.RpcError) as e:
        orders_pb2_grpc.OrdersStub(channel).ListOrders(pb.ListOrdersRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, "no certificate: no connection"


GRPC_DRAIN = 3.0


def test_sigterm_turns_health_first_and_serves_through_the_drain(server: Server, tmp_path: Path) -> None:
    """As the HTTP server does: on SIGTERM, health answers NOT_SERVING at once (a balancer or the
    kubelet's gRPC probe stops sending) while calls are still served for ORDERFAST_DRAIN_DELAY; then
    the process stops cleanly."""
    with grpc_serving({**server.env, "ORDERFAST_DRAIN_DELAY": str(GRPC_DRAIN)}, tmp_path) as (g, channel):
        checks = health_pb2_grpc.HealthStub(channel)
        stub = orders_pb2_grpc.OrdersStub(channel)
        sku = new_sku(server, stock=5)
        g.proc.terminate()
        terminated = time.monotonic()
        deadline = terminated + GRPC_DRAIN
        while checks.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "health still SERVING after SIGTERM"
            time.sleep(0.02)
        order, _ = create(stub, auth(server, f"drain-{uuid.uuid4().hex[:6]}"), sku)
        assert order.status == "PENDING_PAYMENT", "a call during the drain is served"
        assert g.proc.wait(timeout=GRPC_DRAIN + 30) == 0, g.log.read_text()
        assert time.monotonic() - terminated >= GRPC_DRAIN, "the listener stayed open for the drain"


def test_a_reloaded_policy_naming_no_route_is_refused_and_the_old_one_kept(server: Server, tmp_path: Path) -> None:
    """The rate-limit file is the HTTP server's too: serve-grpc refuses a new one that names a route
    the HTTP API does not have, as the HTTP workers do, and keeps limiting by the old one."""
    policies = tmp_path / "limits.toml"
    policies.write_text(QUOTE_POLICY)
    with grpc_serving({**server.env, "ORDERFAST_RATELIMIT_FILE": str(policies)}, tmp_path) as (g, channel):
        policies.write_text(QUOTE_POLICY.replace("POST /v1/quotes", "POST /v1/qoutes"))
        deadline = time.monotonic() + 15
        while "names no route" not in g.log.read_text():
            assert time.monotonic() < deadline, "the typo'd file was not refused:\n" + g.log.read_text()
            time.sleep(0.05)
        refused = fourth_quote_refused(server, channel, "grpc-reload")
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "the old policy still limits"


IP_POLICY = '[policies.quotes]\nlimit = "2/3600"\nburst = 2\nkey = "ip"\nroutes = ["POST /v1/quotes"]\n'


def test_behind_a_trusted_proxy_the_forwarded_client_and_subject_count(server: Server, tmp_path: Path) -> None:
    """A gRPC proxy (Envoy, nginx's grpc_pass) adds `x-forwarded-for`; from a peer in
    ORDERFAST_TRUSTED_PROXIES it names the client, as the header does for HTTP — else every caller
    behind the proxy would share the proxy's `ip` bucket. So does the verified-subject header
    (ORDERFAST_CLIENT_CERT_HEADER) of a proxy terminating mutual TLS."""
    policies = tmp_path / "limits.toml"
    policies.write_text(IP_POLICY)
    env = {
        **server.env,
        "ORDERFAST_RATELIMIT_FILE": str(policies),
        "ORDERFAST_TRUSTED_PROXIES": "127.0.0.1/32",
        "ORDERFAST_CLIENT_CERT_HEADER": "X-Client-Subject",
    }
    with grpc_serving(env, tmp_path) as (_, channel):
        stub = orders_pb2_grpc.OrdersStub(channel)
        request = pb.QuoteRequest(currency="USD", items=[pb.Item(sku="SKU-1", quantity=1)])

        def quote(client: str) -> grpc.StatusCode:
            md = (*auth(server, f"ip-{uuid.uuid4().hex[:6]}"), ("x-forwarded-for", f"{client}, 127.0.0.1"))
            try:
                stub.Quote(request, metadata=md)
            except grpc.RpcError as e:
                return e.code()  # type: ignore[no-any-return]
            return grpc.StatusCode.OK

        assert [quote("203.0.113.7") for _ in range(3)] == [grpc.StatusCode.OK] * 2 + [
            grpc.StatusCode.RESOURCE_EXHAUSTED
        ]
        assert quote("203.0.113.8") == grpc.StatusCode.OK, "another client behind the same proxy"
        # The subject of a client certificate the proxy verified names the caller, as over HTTP.
        sku = new_sku(server, stock=3)
        order, _ = create(stub, (("x-client-subject", "CN=billing-svc,O=Shop"),), sku)
        assert order.customer_id == "billing-svc"


def test_a_message_larger_than_the_body_cap_is_refused_before_it_is_read(
    rpc: tuple[Server, GrpcServer, grpc.Channel],
) -> None:
    """ORDERFAST_MAX_BODY_BYTES caps a gRPC message as it caps an HTTP body (grpcio's own default is
    4 MiB): a larger one is RESOURCE_EXHAUSTED before it is parsed or priced."""
    server, _, channel = rpc
    stub = orders_pb2_grpc.OrdersStub(channel)
    md = auth(server, f"grpc-big-{uuid.uuid4().hex[:6]}")
    items = [pb.Item(sku=f"SKU-{i:05d}-" + "x" * 40, quantity=1) for i in range(2000)]
    big = pb.QuoteRequest(currency="USD", items=items)
    assert big.ByteSize() > 65536  # the e2e server's cap is the default
    with pytest.raises(grpc.RpcError) as refused:
        stub.Quote(big, metadata=md)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
    small = pb.QuoteRequest(currency="USD", items=[pb.Item(sku="SKU-1", quantity=1)])
    assert stub.Quote(small, metadata=md).total


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_workers_share_the_port_and_one_that_dies_is_replaced(server: Server, tmp_path: Path) -> None:
    """`serve-grpc --workers 2`: two processes serve the port, the main process's metrics port counts
    the calls of both, a killed worker is started again, and SIGTERM stops them all cleanly."""
    metrics_port = free_port()
    env = {**server.env, "ORDERFAST_METRICS_PORT": str(metrics_port), "ORDERFAST_DRAIN_DELAY": "0"}
    g = GrpcServer(env, tmp_path, None, "--workers", "2")
    request = pb.QuoteRequest(currency="USD", items=[pb.Item(sku="SKU-1", quantity=1)])
    md = auth(server, f"grpc-workers-{uuid.uuid4().hex[:6]}")

    def quotes(n: int) -> None:
        for _ in range(n):  # each on a new channel: new connections, spread by the kernel
            with grpc.insecure_channel(g.address) as channel:
                assert orders_pb2_grpc.OrdersStub(channel).Quote(request, metadata=md).total

    def counted() -> float:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        found = re.search(r'^orderfast_grpc_requests_total\{method="Quote",code="OK"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    try:
        with grpc.insecure_channel(g.address) as channel:
            g.wait_serving(channel)
        first = children(g.proc.pid)
        assert len(first) == 2, first
        quotes(10)
        until(lambda: counted() >= 10, "both workers' calls in the main process's scrape")
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        until(lambda: victim not in children(g.proc.pid) and len(children(g.proc.pid)) == 2, "a worker replaced")
        until(lambda: g.log.read_text().count("gRPC listening on") == 3, "the replacement serves")
        quotes(10)
        assert g.stop() == 0, g.log.read_text()
        assert not any(Path(f"/proc/{pid}").exists() for pid in first - {victim}), "every worker stopped"
    finally:
        if g.proc.poll() is None:
            os.killpg(g.proc.pid, signal.SIGKILL)
            g.proc.wait()


def test_connections_are_aged_out_so_clients_rebalance(server: Server, tmp_path: Path) -> None:
    """gRPC keeps a connection for ever, so pods added by an autoscaler would get no traffic from
    clients already connected: after ORDERFAST_GRPC_MAX_CONNECTION_AGE the server sends GOAWAY, the
    client's channel goes idle and its next call connects again (wherever the balancer sends it)."""
    states: list[grpc.ChannelConnectivity] = []
    with grpc_serving({**server.env, "ORDERFAST_GRPC_MAX_CONNECTION_AGE": "1"}, tmp_path) as (_, channel):
        channel.subscribe(states.append, try_to_connect=False)
        stub = orders_pb2_grpc.OrdersStub(channel)
        md = auth(server, f"grpc-aged-{uuid.uuid4().hex[:6]}")
        request = pb.QuoteRequest(currency="USD", items=[pb.Item(sku="SKU-1", quantity=1)])
        assert stub.Quote(request, metadata=md).total
        until(lambda: grpc.ChannelConnectivity.IDLE in states, "the server ended the aged connection")
        assert stub.Quote(request, metadata=md).total, "the next call connects again"


def test_calls_beyond_the_admission_limit_are_shed_at_once_and_health_never_is(server: Server, tmp_path: Path) -> None:
    """The HTTP workers' admission control, for gRPC calls: past the limit a call is UNAVAILABLE at
    once with `overloaded` and RetryInfo (nothing was done, any call may be retried), instead of
    queueing behind the others; the health service is never shed (an orchestrator must see a loaded
    process as alive)."""
    env = {**server.env, "ORDERFAST_ADMISSION_MAX": "1", "ORDERFAST_ADMISSION_MIN": "1"}
    with grpc_serving(env, tmp_path) as (_, channel):
        stub = orders_pb2_grpc.OrdersStub(channel)
        checks = health_pb2_grpc.HealthStub(channel)
        sku = new_sku(server, stock=1000)
        md = auth(server, f"grpc-shed-{uuid.uuid4().hex[:6]}")
        calls = [
            stub.CreateOrder.future(
                pb.CreateOrderRequest(
                    idempotency_key=uuid.uuid4().hex, currency="USD", items=[pb.Item(sku=sku, quantity=1)]
                ),
                metadata=md,
            )
            for _ in range(40)
        ]
        during = checks.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        outcomes = []
        for call in calls:
            try:
                outcomes.append(("OK", call.result(timeout=30).status))
            except grpc.RpcError as e:
                code, reason, _, _, retry = refusal(e)
                outcomes.append((code.name, reason))
                assert retry is not None and retry >= 1
        assert during == health_pb2.HealthCheckResponse.SERVING
        assert set(outcomes) == {("OK", "PENDING_PAYMENT"), ("UNAVAILABLE", "overloaded")}, set(outcomes)
        with server.client("qual-admin", "admin") as admin:
            left = admin.get(f"/v1/products/{sku}").json()["stock"]
        assert left == 1000 - outcomes.count(("OK", "PENDING_PAYMENT")), "a shed call did nothing"
