"""What the server writes to its log: no secret, no SQL, no traceback — even when things go wrong.

One server on real PostgreSQL behind a cuttable proxy, logging at debug level, is put through
refused credentials, hostile bodies, an API key's whole life, webhooks and a database outage;
then every line of its log is read.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import jwt
import orjson
import pytest

from orderfast.services.payments import sign
from tests.conftest import JWT_SECRET, WEBHOOK_SECRET
from tests.e2e.conftest import Server
from tests.e2e.tcp_proxy import TcpProxy
from tests.e2e.test_orders import assert_problem

SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|WHERE|RETURNING)\b", re.IGNORECASE)
DB_PASSWORD = "l0g-test-pw-9f3a"


@pytest.fixture
def logged(
    tmp_path_factory: pytest.TempPathFactory, pg_database_factory: Callable[[], str]
) -> Iterator[tuple[Server, TcpProxy]]:
    dsn = urlsplit(pg_database_factory())
    proxy = TcpProxy(dsn.hostname or "127.0.0.1", dsn.port or 5432)
    # The server's DSN carries a password the test can look for (trust auth ignores it).
    user = (dsn.username or "postgres") + ":" + (dsn.password or DB_PASSWORD)
    via_proxy = urlunsplit(dsn._replace(netloc=f"{user}@127.0.0.1:{proxy.port}"))
    env = {"ORDERFAST_DATABASE_URL": via_proxy, "ORDERFAST_LOG_LEVEL": "debug"}
    server = Server(tmp_path_factory.mktemp("logs"), env, workers=1)
    server.start()
    try:
        yield server, proxy
    finally:
        server.stop()
        proxy.close()


def test_no_secret_sql_or_traceback_reaches_the_log(logged: tuple[Server, TcpProxy]) -> None:
    server, proxy = logged
    secrets = [JWT_SECRET, WEBHOOK_SECRET, urlsplit(server.env["ORDERFAST_DATABASE_URL"]).password or ""]
    now = int(time.time())
    expired = jwt.encode({"sub": "late", "iat": now - 7200, "exp": now - 3600}, JWT_SECRET, algorithm="HS256")
    with server.client("ops", "admin") as admin:
        created = admin.post("/v1/api-keys", json={"name": "logs", "roles": ["service"]})
        assert created.status_code == 201, created.text
        api_key = created.json()["key"]
        secrets += [api_key, admin.headers["authorization"].split()[1]]
    with server.client() as c:
        assert c.get("/v1/events", headers={"x-api-key": api_key}).status_code == 200
        assert_problem(c.get("/v1/orders", headers={"authorization": f"Bearer {expired}"}), 401, "unauthorized")
        assert_problem(c.get("/v1/orders", headers={"x-api-key": api_key + "x"}), 401, "unauthorized")
        hostile = {"currency": "USD", "items": [{"sku": "'; DROP TABLE orders; --", "quantity": 1}]}
        with server.client("mallory") as m:
            r = m.post("/v1/orders", json=hostile, headers={"idempotency-key": "k' OR '1'='1"})
            assert 400 <= r.status_code < 500, r.text
            assert_problem(m.get("/v1/orders?cursor=' OR 1=1 --"), 400, "invalid-cursor")
        body = orjson.dumps(
            {"event_id": "e1", "order_id": "nope", "status": "succeeded", "amount": "1", "currency": "X"}
        )
        signature = sign("not-the-secret", now, body)
        webhook = c.post("/v1/payments/webhook", content=body, headers={"orderfast-signature": signature})
        assert_problem(webhook, 401, "invalid-signature")
    # The database goes away under the server: answers are 503s that say to retry, never 500s.
    proxy.cut()
    with server.client("during-outage") as c:
        outage = c.post(
            "/v1/orders",
            json={"currency": "USD", "items": [{"sku": "SKU-1", "quantity": 1}]},
            headers={"idempotency-key": "outage-1"},
        )
        doc = assert_problem(outage, 503, "store-unavailable")
        assert outage.headers["retry-after"] == "1" and "Idempotency-Key" in str(doc["detail"])
        assert_problem(c.get("/v1/orders"), 503, "store-unavailable")
    proxy.restore()
    with server.client("after-outage") as c:
        assert c.get("/v1/orders").status_code == 200, "the pool reconnects by itself"
    server.stop()  # flushes and closes the log

    lines = server.log_path.read_text().splitlines()
    assert any('"database unavailable on POST /v1/orders' in line for line in lines), "the outage is logged"
    # One JSON object per line — Granian's own start and stop lines too.
    entries = [orjson.loads(line) for line in lines]
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in entries)
    assert any(e["logger"].startswith("_granian") and "Listening at" in e["msg"] for e in entries)
    for line in lines:
        for secret in secrets:
            assert secret not in line, f"a secret in the log: {line}"
        assert not SQL.search(line), f"SQL in the log: {line}"
        assert "Traceback" not in line and 'File "' not in line, f"a traceback in the log: {line}"
