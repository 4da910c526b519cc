"""Mutual TLS for service-to-service calls, with certificates the test makes (``tests/e2e/certs.py``).

1. Granian terminates TLS and verifies client certificates against ORDERFAST_TLS_CLIENT_CA: a client
   without a certificate from that CA gets no connection at all; one with it still authenticates.
2. A TLS-terminating proxy (a real HAProxy) verifies the client certificate and passes its subject in
   ORDERFAST_CLIENT_CERT_HEADER; orderfast believes the header only from its trusted proxies and makes
   the subject's common name a principal with the role ``service``.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orderfast.http.auth import mint_token
from tests.conftest import JWT_SECRET
from tests.e2e.certs import CertificateAuthority, Issued
from tests.e2e.cluster import haproxy_binary
from tests.e2e.conftest import free_port
from tests.e2e.test_orders import assert_problem

HEADER = "x-client-cert-subject"
PROXY_SOURCE = "127.0.0.2"  # HAProxy connects from here: the one trusted proxy address


class Pki:
    def __init__(self, directory: Path) -> None:
        self.ca = CertificateAuthority(directory, "services")
        self.rogue_ca = CertificateAuthority(directory, "rogue")
        self.server = self.ca.issue("localhost", server=True)
        self.client = self.ca.issue("inventory-svc", organization="Shop")
        self.rogue = self.rogue_ca.issue("inventory-svc")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_client(base_url: str, pki: Pki, cert: Issued | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca.path))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return httpx.Client(base_url=base_url, verify=context, timeout=10)


def serve(workdir: Path, env: dict[str, str], ready: httpx.Client) -> subprocess.Popen[bytes]:
    """``orderfast serve`` (one worker) with ``env``, once ``ready`` gets 200 from /startupz."""
    full = {**os.environ, "ORDERFAST_DATA_DIR": str(workdir / "data"), "ORDERFAST_JWT_SECRET": JWT_SECRET, **env}
    subprocess.run([sys.executable, "-m", "orderfast", "migrate"], env=full, check=True, capture_output=True)
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orderfast", "serve", "--workers", "1"],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if ready.get("/startupz").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def granian_mtls(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("mtls-granian")
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    env = {
        "ORDERFAST_PORT": str(port),
        "ORDERFAST_TLS_CERT": str(pki.server.cert),
        "ORDERFAST_TLS_KEY": str(pki.server.key),
        "ORDERFAST_TLS_CLIENT_CA": str(pki.ca.path),
    }
    with tls_client(base, pki, pki.client) as ready:
        proc = serve(workdir, env, ready)
    try:
        yield base
    finally:
        stop(proc)


def test_granian_lets_in_only_clients_with_a_certificate_from_the_ca(granian_mtls: str, pki: Pki) -> None:
    with tls_client(granian_mtls, pki, pki.client) as c:
        assert c.get("/livez").status_code == 200
        # The certificate opens the connection; a request still authenticates as it always does.
        assert_problem(c.get("/v1/orders"), 401, "unauthorized")
        token = mint_token(JWT_SECRET, "inventory-svc", ("service",))
        assert c.get("/v1/events", headers={"authorization": f"Bearer {token}"}).status_code == 200
    for cert in (None, pki.rogue):  # no certificate, or one from another CA: no connection at all
        with tls_client(granian_mtls, pki, cert) as c, pytest.raises(httpx.TransportError):
            c.get("/livez")
    with httpx.Client(timeout=5) as plain, pytest.raises(httpx.TransportError):  # nor plain HTTP
        plain.get(granian_mtls.replace("https://", "http://") + "/livez")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[str, str]]:
    """HAProxy terminating mutual TLS in front of orderfast on plain HTTP: (proxy URL, direct URL)."""
    workdir = tmp_path_factory.mktemp("mtls-proxy")
    port, proxy_port = free_port(), free_port()
    env = {
        "ORDERFAST_PORT": str(port),
        "ORDERFAST_TRUSTED_PROXIES": f"{PROXY_SOURCE}/32",
        "ORDERFAST_CLIENT_CERT_HEADER": HEADER,
    }
    direct = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=direct, timeout=5) as ready:
        proc = serve(workdir, env, ready)
    config = workdir / "haproxy.cfg"
    config.write_text(
        f"""global
    maxconn 200
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend mtls
    bind 127.0.0.1:{proxy_port} ssl crt {pki.server.bundle()} ca-file {pki.ca.path} verify required
    # Whatever the client sent under this name is replaced by the verified subject.
    http-request set-header {HEADER} %[ssl_c_s_dn]
    default_backend orderfast
backend orderfast
    server app 127.0.0.1:{port} source {PROXY_SOURCE}
"""
    )
    with (workdir / "haproxy.log").open("wb") as log:
        haproxy = subprocess.Popen([haproxy_binary(), "-f", str(config), "-db"], stdout=log, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{proxy_port}"
    deadline = time.monotonic() + 20
    with tls_client(base, pki, pki.client) as c:
        while True:
            try:
                if c.get("/livez").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert haproxy.poll() is None and time.monotonic() < deadline, (workdir / "haproxy.log").read_text()
            time.sleep(0.05)
    try:
        yield base, direct
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        stop(proc)


def test_a_certificate_verified_by_the_proxy_is_a_service_principal(proxied: tuple[str, str], pki: Pki) -> None:
    proxy, direct = proxied
    admin = mint_token(JWT_SECRET, "mtls-admin", ("admin",))
    with httpx.Client(base_url=direct, timeout=5, headers={"authorization": f"Bearer {admin}"}) as c:
        put = c.put("/v1/products/MTLS-1", json={"name": "m", "price": "1.00", "currency": "USD", "stock": 5})
        assert put.status_code == 201, put.text
    with tls_client(proxy, pki, pki.client) as c:
        events = c.get("/v1/events")  # the service role's route, with no token at all
        assert events.status_code == 200, events.text
        # A spoofed header from the client is overwritten by the proxy with the real subject: the
        # order belongs to the certificate's common name.
        created = c.post(
            "/v1/orders",
            json={"currency": "USD", "items": [{"sku": "MTLS-1", "quantity": 1}]},
            headers={"idempotency-key": "mtls-1", HEADER: "/CN=someone-else"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["customer_id"] == "inventory-svc"
        # A bearer token still wins: a customer token through the proxy is that customer.
        token = mint_token(JWT_SECRET, "customer-7")
        assert_problem(c.get("/v1/events", headers={"authorization": f"Bearer {token}"}), 403, "forbidden")
    for cert in (None, pki.rogue):  # the proxy lets in no one else
        with tls_client(proxy, pki, cert) as c, pytest.raises(httpx.TransportError):
            c.get("/v1/events")


def test_the_header_means_nothing_from_anyone_but_a_trusted_proxy(proxied: tuple[str, str]) -> None:
    _, direct = proxied
    with httpx.Client(base_url=direct, timeout=5) as c:  # straight to orderfast, from 127.0.0.1
        assert_problem(c.get("/v1/events", headers={HEADER: "/O=Shop/CN=inventory-svc"}), 401, "unauthorized")
