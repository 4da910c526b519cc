"""The network between the server and PostgreSQL goes bad: a TCP fault proxy (``tests/e2e/tcp_proxy.py``)
sits on that path and adds latency, or blackholes it (accepts and reads, forwards nothing: a partition)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Server
from tests.e2e.tcp_proxy import TcpProxy
from tests.faults.audit import assert_whole, snapshot
from tests.faults.harness import BUDGET, Creates, fault_server, order_id, serving
from tests.faults.outage import ride_out

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.postgres]

LATENCY = 0.025  # seconds added to each direction: 50 ms a round trip


@pytest.fixture(scope="module")
def proxied(
    pg_database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, TcpProxy]]:
    """A server whose every connection to PostgreSQL (the machine's; only the proxy is broken) goes
    through a fault proxy."""
    dsn = urlsplit(pg_database_factory())
    proxy = TcpProxy(dsn.hostname or "127.0.0.1", dsn.port or 5432)
    proxied_dsn = dsn._replace(netloc=f"{dsn.username}@127.0.0.1:{proxy.port}").geturl()
    try:
        with serving(fault_server(tmp_path_factory.mktemp("proxied"), proxied_dsn)) as server:
            yield server, proxy
    finally:
        proxy.close()


def test_orders_succeed_over_a_slow_network(proxied: tuple[Server, TcpProxy]) -> None:
    """Fault: 25 ms added to each direction of every connection to PostgreSQL (50 ms a round trip).

    Promise: orders are still created — slower, well within the budget, and the audit is clean."""
    server, proxy = proxied
    proxy.latency = LATENCY
    try:
        started = time.monotonic()
        with Creates(server, customers=4) as load:
            load.wait_for("orders created over the slow network", 40, since=started)
    finally:
        proxy.latency = 0.0
    slow = [a for a in load.done() if a.sent >= started]
    assert {a.status for a in slow} == {201}, [a.content for a in slow if a.status != 201][:3]
    seconds = sorted(a.seconds for a in slow)
    assert seconds[0] >= 2 * LATENCY, "every create paid at least one round trip of the added latency"
    assert seconds[-1] < BUDGET, "and stayed within the budget"
    print(f"\n+{2 * LATENCY * 1000:.0f} ms RTT: {len(slow)} created, {seconds[0]:.3f} to {seconds[-1]:.3f} s each")
    assert_whole(snapshot(server.env), [order_id(a) for a in load.done() if a.status == 201])


def test_a_blackholed_database_is_a_503_within_the_budget_and_the_server_recovers(
    proxied: tuple[Server, TcpProxy],
) -> None:
    """Fault: for 4 s the proxy forwards nothing either way — open connections fall silent, new ones
    are accepted and never answered (a partition); then it forwards again (the silenced connections
    are reset, as TCP would after a long partition).

    Promise: every create is answered within the budget (+ slack) with 201 or 503 ``store-unavailable``
    and ``Retry-After``, never a 500 or a hang; the server creates orders again once the network is
    back, without a restart; every 503's retry returns the truth; the audit is clean."""
    server, proxy = proxied
    outage = ride_out(server, proxy.blackhole, proxy.restore, seconds=4)
    print(f"\nblackholed network: {outage}")
