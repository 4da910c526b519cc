"""The relay's faults, process to process: ``orderfast relay`` publishing a real PostgreSQL outbox to a
private ``redis-server`` that is stopped and started again, and a relay SIGKILLed while it holds a
batch. (``tests/outbox/test_relay.py`` tests the same logic in one process with fake brokers.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import run_blocking
from tests.e2e.tcp_proxy import TcpProxy
from tests.faults.harness import (
    Creates,
    RedisServer,
    RelayProcess,
    fault_server,
    relay_env,
    serving,
    stream_event_ids,
)
from tests.ops.pgcluster import wait_until
from tests.store.test_contract import new_order, put

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

OUTAGE = 10.0  # seconds Redis is away
DRAIN_LIMIT = 5.0  # seconds from Redis's return to every event in the stream
LEASE = 2.0  # ORDERFAST_RELAY_LEASE for the takeover test
TAKEOVER_SLACK = 2.0  # seconds past the lease for the next relay's poll and the publishing itself


def outbox(dsn: str, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def event_ids(dsn: str) -> set[str]:
    return {r[0] for r in outbox(dsn, "SELECT event_id::text FROM outbox")}


def dead_events(dsn: str) -> int:
    return int(outbox(dsn, "SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL")[0][0])


def test_a_redis_outage_dead_letters_nothing_and_the_backlog_drains_within_seconds_of_its_return(
    pg_database_factory: Callable[[], str], private_redis: RedisServer, tmp_path: Path
) -> None:
    """Fault: the Redis the relay publishes to (and the server's shared rate limits use) stops for
    10 s while customers keep creating orders and ``orderfast relay`` keeps running; then it starts
    again with what it had (an outage, not a loss of the stream).

    Promise: orders are still created throughout (the rate limits fall back to per-worker ones); no
    event is dead-lettered during the outage (``orderfast outbox dead`` says 0, the outbox has no
    dead row) — the broker being away is not the events' fault; within a few seconds of Redis's
    return every event of the outbox is in the stream, and the relay is still the same process."""
    dsn = pg_database_factory()
    (tmp_path / "server").mkdir()
    server = fault_server(
        tmp_path / "server",
        dsn,
        ORDERFAST_REDIS_URL=private_redis.url,
        ORDERFAST_RELAY_IN_PROCESS="false",
    )
    env = relay_env(dsn, private_redis.url, tmp_path)
    stream = env["ORDERFAST_STREAM_PREFIX"] + "order"
    relay = RelayProcess(env, tmp_path / "relay.log")
    redis = private_redis.client()
    try:
        with serving(server), Creates(server, customers=2) as load:
            load.wait_for("orders created before the outage", 20)
            wait_until(lambda: redis.xlen(stream) >= 10, timeout=15, what="the relay publishes")
            private_redis.stop()
            down = time.monotonic()
            time.sleep(OUTAGE)  # the fault's duration
            load.wait_for("orders created during the outage", 10, since=down, timeout=5)
            load.stop()
            assert relay.proc.poll() is None, "the relay rides the outage out"
            waiting = event_ids(dsn)
            assert dead_events(dsn) == 0, "nothing is dead-lettered during a broker outage"
            said = subprocess.run(
                [sys.executable, "-m", "orderfast", "outbox", "dead"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
            assert said.strip().endswith("0 dead events"), said
            private_redis.start()
            back = time.monotonic()
            wait_until(
                lambda: set(stream_event_ids(redis, stream)) >= waiting,
                timeout=DRAIN_LIMIT,
                what="every event in the stream after Redis returned",
            )
            drained = time.monotonic() - back
        assert {a.status for a in load.done()} == {201}, "no create failed because Redis was away"
        assert dead_events(dsn) == 0
        assert relay.proc.poll() is None, "the same relay process, never restarted"
        said_by_relay = [line["msg"] for line in relay.lines() if line.get("logger") == "orderfast.relay"]
        assert not [m for m in said_by_relay if "dead" in str(m) and "none is dead" not in str(m)], said_by_relay
        print(f"\nRedis outage {OUTAGE:.0f} s: {len(waiting)} events, drained {drained:.2f} s after Redis returned")
    finally:
        relay.kill()
        redis.close()


def test_a_killed_relays_batch_is_published_by_another_within_the_lease(
    pg_database_factory: Callable[[], str], private_redis: RedisServer, tmp_path: Path
) -> None:
    """Fault: a relay is SIGKILLed while it holds a claimed batch — every waiting event, claimed and
    being sent to a Redis that never answers (a blackholing proxy), so nothing of it is published.

    Promise: while that relay lives, its lease renewals keep the batch its own (another relay running
    beside it for two leases publishes nothing); once it is killed, the other relay publishes every
    one of those events within the lease (``ORDERFAST_RELAY_LEASE``, 2 s here) plus its poll — not
    after a fixed 30 s — and none is dead."""
    dsn = pg_database_factory()

    async def orders() -> None:
        from orderfast.store.postgres import PostgresStore

        store = PostgresStore(dsn, min_size=1, max_size=2)
        await store.open(check_schema=False)
        await store.migrate()
        await put(store, "SKU-A", stock=100_000)
        await store.create_orders([new_order() for _ in range(200)])
        await store.close()

    run_blocking(orders)
    waiting = event_ids(dsn)
    silent = TcpProxy("127.0.0.1", private_redis.port)
    silent.blackhole()
    env = relay_env(dsn, private_redis.url, tmp_path, ORDERFAST_RELAY_LEASE=str(LEASE))
    stream = env["ORDERFAST_STREAM_PREFIX"] + "order"
    # Its Redis never answers, and it waits for it far longer than the test: it holds the batch.
    stuck_env = env | {"ORDERFAST_REDIS_URL": f"redis://127.0.0.1:{silent.port}/0", "ORDERFAST_REQUEST_TIMEOUT": "60"}
    stuck = RelayProcess(stuck_env, tmp_path / "stuck.log", "--batch", "1000")
    other: RelayProcess | None = None
    redis = private_redis.client()
    try:
        held = "SELECT count(*) FROM outbox WHERE lease_until > now() AND published_at IS NULL"
        wait_until(
            lambda: outbox(dsn, held)[0][0] == len(waiting), timeout=20, what="the first relay holds every event"
        )
        other = RelayProcess(env, tmp_path / "other.log")
        wait_until(other.lines, timeout=20, what="the second relay is up")
        time.sleep(2 * LEASE)  # the stuck relay holds on for two leases: its renewals keep the batch
        assert redis.xlen(stream) == 0, "nothing is taken from a live relay that renews its lease"
        stuck.kill()
        killed = time.monotonic()
        wait_until(
            lambda: set(stream_event_ids(redis, stream)) >= waiting,
            timeout=LEASE + TAKEOVER_SLACK,
            what=f"the killed relay's batch published within the {LEASE} s lease + {TAKEOVER_SLACK} s",
        )
        took_over = time.monotonic() - killed
        assert dead_events(dsn) == 0
        print(f"\nrelay SIGKILL: {len(waiting)} held events published {took_over:.2f} s later (lease {LEASE} s)")
    finally:
        stuck.kill()
        if other is not None:
            other.kill()
        silent.close()
        redis.close()
