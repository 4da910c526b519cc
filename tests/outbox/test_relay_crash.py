"""SIGKILL a real relay process mid-stream, restart it: every event published at least once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import redis

from orderfast.store.postgres import PostgresStore
from tests.conftest import run_blocking
from tests.store.test_contract import new_order, put


async def _orders_awaiting_publication(dsn: str) -> list[str]:
    """A migrated database with 1 000 orders whose events wait for the relay; their event ids."""
    store = PostgresStore(dsn, min_size=1, max_size=2)
    await store.open(check_schema=False)
    await store.migrate()
    await put(store, "SKU-A", stock=100_000)
    ids = []
    for _ in range(40):  # 40 batches of 25 orders: plenty still unpublished when the relay stops
        batch = [new_order() for _ in range(25)]
        await store.create_orders(batch)
        ids += [n.event.id for n in batch]
    await store.close()
    return ids


def _relay_env(dsn: str, redis_url: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ORDERFAST_DATABASE_URL": dsn,
        "ORDERFAST_REDIS_URL": redis_url,
        "ORDERFAST_STREAM_PREFIX": prefix,
        "ORDERFAST_DATA_DIR": str(tmp_path),
    }


def _run_until_published(
    relay_cmd: list[str], env: dict[str, str], client: redis.Redis, stream: str, event_ids: list[str], *, seconds: float
) -> list[str]:
    """Runs a relay until every event is in the stream (polled, bounded), stops it with SIGTERM;
    the event ids the stream holds, duplicates included."""
    relay = subprocess.Popen(relay_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + seconds
        while True:
            published = [fields["event_id"] for _, fields in client.xrange(stream)]
            if set(published) >= set(event_ids) or time.monotonic() > deadline:
                return published
            time.sleep(0.05)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(timeout=15)


def test_killed_relay_loses_nothing(pg_database_factory: Callable[[], str], redis_url: str, tmp_path: Path) -> None:
    dsn = pg_database_factory()
    prefix = f"crash:{uuid.uuid4().hex[:8]}:"
    event_ids = run_blocking(lambda: _orders_awaiting_publication(dsn))
    env = _relay_env(dsn, redis_url, prefix, tmp_path)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = f"{prefix}order"
    relay_cmd = [sys.executable, "-m", "orderfast", "relay", "--batch", "10", "--lease", "1"]
    try:
        relay = subprocess.Popen(relay_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Poll (bounded) until the relay is visibly part-way through, then kill it without warning.
        deadline = time.monotonic() + 60
        while client.xlen(stream) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        published_before = client.xlen(stream)
        assert 0 < published_before < len(event_ids), "killed mid-stream"
        # Restart: whatever the dead relay had leased becomes claimable when its lease ends.
        published = _run_until_published(relay_cmd, env, client, stream, event_ids, seconds=60)
        assert set(published) == set(event_ids), "every event published at least once"
        assert len(published) - len(set(published)) <= 10, "at most the one claimed batch is published twice"
    finally:
        client.delete(stream)
        client.close()


def test_sigterm_stops_the_relay_cleanly_mid_stream(
    pg_database_factory: Callable[[], str], redis_url: str, tmp_path: Path
) -> None:
    """A relay stopped with SIGTERM (a rollout) finishes its batch and exits 0; what it had not
    claimed waits for the next relay, which needs no lease to run out: nothing is lost."""
    dsn = pg_database_factory()
    prefix = f"term:{uuid.uuid4().hex[:8]}:"
    event_ids = run_blocking(lambda: _orders_awaiting_publication(dsn))
    env = _relay_env(dsn, redis_url, prefix, tmp_path)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = f"{prefix}order"
    # An hour-long lease: a successor that had to wait one out would time the test out.
    relay_cmd = [sys.executable, "-m", "orderfast", "relay", "--batch", "10", "--lease", "3600"]
    try:
        relay = subprocess.Popen(relay_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while client.xlen(stream) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        relay.send_signal(signal.SIGTERM)
        out, _ = relay.communicate(timeout=10)
        assert relay.returncode == 0, out
        # It logs as the server does: one JSON object per line.
        lines = [orjson.loads(line) for line in out.splitlines() if line.strip()]
        said = [e["msg"] for e in lines if e["logger"] == "orderfast.relay"]
        assert said[0].startswith("publishing the postgres outbox"), said
        assert any(m.startswith("SIGTERM: finishing") for m in said) and said[-1] == "stopped", said
        assert client.xlen(stream) < len(event_ids), "stopped mid-stream"
        published = _run_until_published(relay_cmd, env, client, stream, event_ids, seconds=30)
        assert set(published) == set(event_ids), "every event published"
        assert len(published) == len(set(published)), "a clean stop publishes nothing twice"
    finally:
        client.delete(stream)
        client.close()
