"""Feature flags changed on a running server: every worker applies a changed flags file within a
second or so, no request in flight is dropped, a bad file is refused with a log line while the
flags in force stay, and `/metrics` and `orderfast config show` say what is in force."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, order_body, running
from tests.e2e.test_orders import assert_problem

WORKERS = 2


@pytest.fixture(scope="module")
def flagged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    flags = tmp_path_factory.mktemp("flags") / "flags.toml"
    flags.write_text("coupons = true\n")
    with running(tmp_path_factory, {"ORDERFAST_FLAGS_FILE": str(flags)}, workers=WORKERS) as srv:
        with srv.client("flags-admin", "admin") as admin:
            put = admin.put("/v1/coupons/FLAG10", json={"currency": "USD", "percent_off": "10"})
            assert put.status_code in (200, 201), put.text
        yield srv, flags


def write(path: Path, text: str) -> None:
    """As a deploy tool or a ConfigMap does: the new file replaces the old one whole."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)


def coupon_quotes(server: Server, n: int = 2 * WORKERS) -> set[int]:
    """Statuses of ``n`` quotes naming the coupon, each on a new connection (so that both workers
    likely answer some)."""
    statuses = set()
    for _ in range(n):
        with server.client(f"quoter-{uuid.uuid4().hex[:6]}") as c:
            r = c.post("/v1/quotes", json=order_body(("SKU-1", 1), coupon="FLAG10"))
        if r.status_code == 422:
            assert_problem(r, 422, "validation-error")
            assert r.json()["errors"][0]["code"] == "coupons_disabled", r.text
        statuses.add(r.status_code)
    return statuses


def until(check: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def metric(server: Server, name: str, label: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    found = re.search(rf"^{name}\{{{label}\}} (\S+)$", text, re.M)
    assert found, f"{name}{{{label}}} not in the scrape"
    return float(found.group(1))


def reads(server: Server, file: str) -> float:
    """How many times the workers have read a changed ``file`` (applied or refused), summed."""
    return sum(
        metric(server, "orderfast_config_reloads_total", f'file="{file}",result="{result}"')
        for result in ("applied", "refused")
    )


def rewrite(server: Server, path: Path, text: str, file: str, workers: int) -> None:
    """Replaces the file and waits until every worker has read it — its reload counter, which each
    worker counts for itself, has grown by one per worker. (Sampling answers on new connections
    cannot tell: they may all reach the worker that already has it.)"""
    before = reads(server, file)
    write(path, text)
    until(lambda: reads(server, file) >= before + workers, f"every worker read the new {file} file")


def test_a_changed_flags_file_reaches_every_worker_without_dropping_a_request(flagged: tuple[Server, Path]) -> None:
    server, flags = flagged
    assert coupon_quotes(server) == {200}
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:  # quotes without a coupon all along: none may fail
        with server.client("steady") as c:
            while not stop.is_set():
                statuses.append(c.post("/v1/quotes", json=order_body(("SKU-1", 1))).status_code)

    background = threading.Thread(target=traffic)
    background.start()
    try:
        rewrite(server, flags, "coupons = false\n", "flags", WORKERS)
        assert coupon_quotes(server) == {422}, "every worker refuses coupons"
        assert metric(server, "orderfast_feature_flag", 'flag="coupons"') == 0.0
        refused_before = metric(server, "orderfast_config_reloads_total", 'file="flags",result="refused"')
        # A bad file: refused, logged, and the flags in force kept.
        rewrite(server, flags, 'coupons = "no"\n', "flags", WORKERS)
        assert server.log_path.read_text().count("coupons must be true or false") >= WORKERS, "each says why"
        assert coupon_quotes(server) == {422}, "the old flags stay in force"
        assert metric(server, "orderfast_config_reloads_total", 'file="flags",result="refused"') >= refused_before + 1
        rewrite(server, flags, "coupons = true\n", "flags", WORKERS)
        assert coupon_quotes(server) == {200}, "coupons back on every worker"
    finally:
        stop.set()
        background.join(timeout=30)
    assert len(statuses) > 50 and set(statuses) == {200}, sorted(set(statuses))
    assert metric(server, "orderfast_feature_flag", 'flag="coupons"') == 1.0
    shown = server.cli("config", "show")
    assert re.search(r"^flag coupons\s+true\s+\(flags file\)$", shown, re.M), shown


def test_an_order_naming_a_coupon_is_refused_while_coupons_are_off(flagged: tuple[Server, Path]) -> None:
    server, flags = flagged
    rewrite(server, flags, "coupons = false\n", "flags", WORKERS)
    try:
        assert coupon_quotes(server) == {422}, "coupons off everywhere"
        with server.client(f"buyer-{uuid.uuid4().hex[:6]}") as c:
            key = uuid.uuid4().hex
            refused = c.post(
                "/v1/orders", json=order_body(("SKU-1", 1), coupon="FLAG10"), headers={"idempotency-key": key}
            )
            assert_problem(refused, 422, "validation-error")
            assert refused.json()["errors"][0]["code"] == "coupons_disabled"
            plain = c.post("/v1/orders", json=order_body(("SKU-1", 1)), headers={"idempotency-key": uuid.uuid4().hex})
            assert plain.status_code == 201, "orders without a coupon go on"
    finally:
        rewrite(server, flags, "coupons = true\n", "flags", WORKERS)
        assert coupon_quotes(server) == {200}, "coupons back on"
