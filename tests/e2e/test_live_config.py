"""Rate-limit policies and the tax table changed on a running server: every worker applies a
changed file within a second or so, requests in flight are answered, a bad file (or a tax table
that drops a class products use) is refused with a log line naming why while what is in force stays."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, order_body, running
from tests.e2e.test_flags import metric, rewrite

WORKERS = 2
QUOTES = '[policies.quotes]\nlimit = "{limit}"\nburst = {burst}\nkey = "user"\nroutes = ["POST /v1/quotes"]\n'


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Path]]:
    files = tmp_path_factory.mktemp("live")
    limits, taxes = files / "limits.toml", files / "taxes.toml"
    limits.write_text(QUOTES.format(limit="1000/1", burst=1000))
    taxes.write_text('standard = "20"\n')
    env = {"ORDERFAST_RATELIMIT_FILE": str(limits), "ORDERFAST_TAX_FILE": str(taxes)}
    with running(tmp_path_factory, env, workers=WORKERS) as srv:
        with srv.client("live-admin", "admin") as admin:
            put = admin.put(
                "/v1/products/TAXED",
                json={"name": "Taxed", "price": "10.00", "currency": "USD", "stock": 1000, "tax_class": "standard"},
            )
            assert put.status_code in (200, 201), put.text
        yield srv, limits, taxes


def each_worker(server: Server, path: str, body: object | None = None, n: int = 2 * WORKERS) -> list[httpx.Response]:
    """``n`` answers, each on a new connection (so that every worker likely answers some)."""
    answers = []
    for _ in range(n):
        with server.client(f"probe-{uuid.uuid4().hex[:8]}") as c:
            answers.append(c.post(path, json=body) if body is not None else c.get(path))
    return answers


def quote_policies(server: Server) -> set[str]:
    return {r.headers["ratelimit-policy"] for r in each_worker(server, "/v1/quotes", order_body(("SKU-1", 1)))}


def taxes_quoted(server: Server) -> set[str]:
    return {r.json()["tax"] for r in each_worker(server, "/v1/quotes", order_body(("TAXED", 1)))}


def test_new_rate_limit_policies_reach_every_worker_and_a_bad_file_is_refused(
    live: tuple[Server, Path, Path],
) -> None:
    server, limits, _ = live
    assert quote_policies(server) == {'"user";q=100000;w=1, "ip";q=1000000;w=1, "quotes";q=1000;w=1'}
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:  # product reads all along, on one connection: none may fail
        with server.client("steady") as c:
            while not stop.is_set():
                statuses.append(c.get("/v1/products/SKU-1").status_code)

    background = threading.Thread(target=traffic)
    background.start()
    try:
        rewrite(server, limits, QUOTES.format(limit="2/3600", burst=2), "ratelimits", WORKERS)
        tight = '"user";q=100000;w=1, "ip";q=1000000;w=1, "quotes";q=2;w=3600'
        assert quote_policies(server) == {tight}, "every worker limits quotes to 2 an hour"
        # A user past 2 quotes on a worker is refused by the new policy (each worker counts its own).
        with server.client(f"buyer-{uuid.uuid4().hex[:6]}") as c:
            answers = [c.post("/v1/quotes", json=order_body(("SKU-1", 1))) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
        refused = answers[2].json()
        assert refused["type"].endswith("#quota-exceeded") and refused["violated-policies"] == ["quotes"], refused
        # Other routes are not in the group.
        assert {r.status_code for r in each_worker(server, "/v1/products/SKU-1")} == {200}

        refused_before = metric(server, "orderfast_config_reloads_total", 'file="ratelimits",result="refused"')
        typo = '[policies.typo]\nlimit = "1/1"\nkey = "user"\nroutes = ["POST /v1/quote"]\n'
        rewrite(server, limits, typo, "ratelimits", WORKERS)
        assert server.log_path.read_text().count("policy 'typo' names no route") >= WORKERS, "each says why"
        assert quote_policies(server) == {tight}, "the policies in force stay"
        after = metric(server, "orderfast_config_reloads_total", 'file="ratelimits",result="refused"')
        assert after >= refused_before + 1
        rewrite(server, limits, "", "ratelimits", WORKERS)  # no finer policy at all: the defaults alone
        assert quote_policies(server) == {'"user";q=100000;w=1, "ip";q=1000000;w=1'}, "the quotes policy gone"
    finally:
        stop.set()
        background.join(timeout=30)
    assert len(statuses) > 50 and set(statuses) == {200}, sorted(set(statuses))


def test_a_new_tax_table_prices_at_once_and_one_dropping_a_class_in_use_is_refused(
    live: tuple[Server, Path, Path],
) -> None:
    server, _, taxes = live
    assert taxes_quoted(server) == {"2.00"}
    rewrite(server, taxes, 'standard = "10"\nreduced = "5"\n', "taxes", WORKERS)
    assert taxes_quoted(server) == {"1.00"}, "every worker taxes at 10 %"
    contract = httpx.get(f"{server.base_url}/openapi.json", timeout=5).json()
    tax_class = contract["components"]["schemas"]["ProductRequest"]["properties"]["tax_class"]
    assert tax_class["enum"] == ["reduced", "standard", None], "the contract names the classes in force"
    with server.client("live-admin", "admin") as admin:
        put = admin.put(
            "/v1/products/REDUCED",
            json={"name": "R", "price": "10.00", "currency": "USD", "stock": 1, "tax_class": "reduced"},
        )
    assert put.status_code in (200, 201), "a class added by the reload can be used"

    # Dropping a class a product still names would price it untaxed without a word: refused.
    rewrite(server, taxes, 'reduced = "5"\n', "taxes", WORKERS)
    assert server.log_path.read_text().count("products still name the tax class standard") >= WORKERS
    # Floats are not exact: refused too.
    rewrite(server, taxes, 'standard = 12.5\nreduced = "5"\n', "taxes", WORKERS)
    assert server.log_path.read_text().count("must be a percentage as a string") >= WORKERS, "each refuses floats"
    assert taxes_quoted(server) == {"1.00"}, "the table in force stays"
    assert metric(server, "orderfast_config_reloads_total", 'file="taxes",result="refused"') >= 2
    rewrite(server, taxes, 'standard = "20"\nreduced = "5"\n', "taxes", WORKERS)
    assert taxes_quoted(server) == {"2.00"}, "back to 20 %"
