"""`orderfast reconcile` against a Redis restarted without its data: a non-zero exit that says what
was lost, and `--republish` + `orderfast relay` put every event back in the stream."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis

from orderfast.store.postgres import PostgresStore
from tests.conftest import run_blocking
from tests.outbox.redis_server import RedisServer
from tests.outbox.test_relay import orders_with_events
from tests.outbox.test_relay_crash import _relay_env


def _orders(dsn: str, n: int, *, migrate: bool = False) -> None:
    async def create() -> None:
        store = PostgresStore(dsn, min_size=1, max_size=2)
        await store.open(check_schema=False)
        try:
            if migrate:
                await store.migrate()
            await orders_with_events(store, n)
        finally:
            await store.close()

    run_blocking(create)


def test_reconcile_finds_a_stream_lost_whole_and_republish_restores_it(
    pg_database_factory: Callable[[], str], tmp_path: Path
) -> None:
    dsn = pg_database_factory()
    server = RedisServer(tmp_path).start()
    env = _relay_env(dsn, server.url, "cli:", tmp_path)
    client = redis.Redis.from_url(server.url, decode_responses=True)

    def orderfast(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orderfast", *args], env=env, capture_output=True, text=True, timeout=60
        )

    def relay_until(entries: int) -> None:
        # --once publishes what is due when it looks: an order's next event only after its first,
        # so a run per event of an order.
        for _ in range(3):
            done = orderfast("relay", "--once")
            assert done.returncode == 0, done.stderr
            if client.xlen("cli:order") >= entries:
                return
        raise AssertionError(f"{client.xlen('cli:order')} of {entries} entries published")

    try:
        _orders(dsn, 100, migrate=True)  # 200 events
        relay_until(200)
        clean = orderfast("reconcile")
        assert (clean.returncode, clean.stdout) == (0, "0 discrepancies\n"), clean.stderr

        server.restart_empty()
        _orders(dsn, 5)  # 10 more, published to the new, empty stream
        relay_until(10)
        found = orderfast("reconcile")
        assert found.returncode == 1, found.stderr
        lines = found.stdout.splitlines()
        assert lines[-1] == "201 discrepancies", lines[-1]
        assert sum(line.startswith("lost_in_broker\t") for line in lines) == 200
        (reset,) = [line for line in lines if line.startswith("stream_reset\t")]
        assert "cli:order" in reset and "200 of them are missing" in reset

        republished = orderfast("reconcile", "--republish")
        assert republished.returncode == 1
        assert republished.stdout.splitlines()[-1] == "201 discrepancies (200 lost events queued again)"
        relay_until(210)
        entries = client.xrange("cli:order")
        assert len(entries) == 210 and len({f["event_id"] for _, f in entries}) == 210, "every event, once"
        after = orderfast("reconcile")
        assert (after.returncode, after.stdout) == (0, "0 discrepancies\n"), after.stdout
    finally:
        client.close()
        server.stop()
