"""/metrics on a real two-worker server: one scrape sums every worker, a killed worker's counts stay,
route templates (never raw paths) label requests, the business counters count what happened, and a
metrics port keeps /metrics off the API port."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Server, business_traffic, free_port, running, start_server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    r = httpx.get(url, timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(check: Callable[[], bool], what: str) -> None:
    """Workers write their counts every second: poll (bounded) until the scrape shows them."""
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str]) -> Iterator[Server]:
    srv = start_server(tmp_path_factory, "postgres", pg_database_factory, {"ORDERFAST_DRAIN_DELAY": "0"})
    try:
        yield srv
    finally:
        srv.stop()


def test_one_scrape_sums_every_worker_and_a_killed_workers_counts_stay(server: Server) -> None:
    url = f"{server.base_url}/metrics"
    before = value(scrape(url), "orderfast_http_requests_total", method="GET", route="/livez", status="2xx")
    # Fresh connections: Granian spreads them over both workers.
    for _ in range(40):
        assert httpx.get(f"{server.base_url}/livez").status_code == 200

    def counted() -> bool:
        got = scrape(url)
        return value(got, "orderfast_http_requests_total", method="GET", route="/livez", status="2xx") == before + 40

    eventually(counted, "both workers' requests in one scrape")
    samples = scrape(url)
    pids = [dict(labels)["pid"] for name, labels in samples if name == "orderfast_process_resident_memory_bytes"]
    assert len(pids) == 2, pids
    # A worker dies without warning; Granian starts another. Its counts are not lost.
    os.kill(int(pids[0]), signal.SIGKILL)

    def respawned() -> bool:
        got = scrape(url)
        live = {dict(labels)["pid"] for name, labels in got if name == "orderfast_process_resident_memory_bytes"}
        return len(live) == 2 and pids[0] not in live

    eventually(respawned, "a new worker, and the dead one's memory gauge gone")
    after = value(scrape(url), "orderfast_http_requests_total", method="GET", route="/livez", status="2xx")
    assert after >= before + 40, "counters never go back when a worker dies"


def test_requests_are_labelled_by_route_template_and_status_class(server: Server) -> None:
    url = f"{server.base_url}/metrics"
    with server.client("metrics-u") as c:
        for _ in range(3):
            assert c.get(f"/v1/orders/{uuid.uuid4()}").status_code == 404
        c.get("/no/such/path/for/metrics")

    def counted() -> bool:
        got = scrape(url)
        return (
            value(got, "orderfast_http_requests_total", method="GET", route="/v1/orders/{order_id}", status="4xx") >= 3
            and value(got, "orderfast_http_requests_total", method="GET", route="unmatched", status="4xx") >= 1
        )

    eventually(counted, "templates, not raw paths")
    text = httpx.get(url).text
    assert "/no/such/path" not in text and "order_id}" in text
    got = scrape(url)
    assert value(got, "orderfast_http_request_duration_seconds_count", method="GET", route="/v1/orders/{order_id}") >= 3


def test_business_counters_count_what_happened(server: Server) -> None:
    url = f"{server.base_url}/metrics"
    start = scrape(url)
    business_traffic(server, "metrics")

    expected = {
        ("orderfast_orders_created_total", (("currency", "USD"),)): 2,
        ("orderfast_order_value_minor_total", (("currency", "USD"),)): 2 * 9950,
        ("orderfast_idempotency_total", (("outcome", "replayed"),)): 1,
        ("orderfast_idempotency_total", (("outcome", "reused"),)): 1,
        ("orderfast_order_refusals_total", (("reason", "out_of_stock"),)): 1,
        ("orderfast_orders_canceled_total", (("reason", "customer"),)): 1,
        ("orderfast_payments_total", (("outcome", "paid"),)): 1,
        ("orderfast_refunds_total", (("currency", "USD"),)): 1,
        ("orderfast_refunded_minor_total", (("currency", "USD"),)): 1000,
    }

    def counted() -> bool:
        got = scrape(url)
        return all(got.get(k, 0) - start.get(k, 0) == n for k, n in expected.items())

    eventually(counted, f"business counters: {expected}")
    got = scrape(url)
    assert value(got, "orderfast_group_commit_batch_size_count") >= 3
    assert value(got, "orderfast_db_pool_connections", state="max") > 0
    assert value(got, "orderfast_catalog_version") > 0


def test_a_metrics_port_takes_metrics_off_the_api_port(tmp_path_factory: pytest.TempPathFactory) -> None:
    port = free_port()
    with running(tmp_path_factory, {"ORDERFAST_METRICS_PORT": str(port)}) as srv:
        assert httpx.get(f"{srv.base_url}/metrics").status_code == 404
        for _ in range(5):
            httpx.get(f"{srv.base_url}/livez")

        def counted() -> bool:
            got = scrape(f"http://127.0.0.1:{port}/metrics")
            return value(got, "orderfast_http_requests_total", method="GET", route="/livez", status="2xx") >= 5

        eventually(counted, "the main process serves the workers' counts")
    with running(tmp_path_factory, {"ORDERFAST_METRICS": "false"}) as srv:
        assert httpx.get(f"{srv.base_url}/metrics").status_code == 404
