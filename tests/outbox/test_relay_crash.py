"""SIGKILL a real relay process mid-stream, restart it: every event published at least once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
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


class Blackhole:
    """A TCP port that accepts connections and never answers: a broker that hangs mid-publish."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            self._held.append(conn)

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


def _leased(dsn: str) -> int:
    """Unpublished events under a live lease."""

    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL AND lease_until > now()")
            )
        finally:
            await conn.close()

    return run_blocking(count)


def test_a_killed_relays_batch_is_taken_over_within_the_lease(
    pg_database_factory: Callable[[], str], redis_url: str, tmp_path: Path
) -> None:
    """A relay stuck in a publish renews its claim for as long as it lives; SIGKILLed, its batch is
    published by the next relay within the lease (ORDERFAST_RELAY_LEASE) and a little start-up."""
    dsn = pg_database_factory()
    prefix = f"lease:{uuid.uuid4().hex[:8]}:"
    event_ids = run_blocking(lambda: _orders_awaiting_publication(dsn))
    lease = 2.0
    env = {**_relay_env(dsn, redis_url, prefix, tmp_path), "ORDERFAST_RELAY_LEASE": str(lease)}
    relay_cmd = [sys.executable, "-m", "orderfast", "relay", "--batch", "100"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = f"{prefix}order"
    hole = Blackhole()
    try:
        hung = subprocess.Popen(
            relay_cmd,
            env={**env, "ORDERFAST_REDIS_URL": f"redis://127.0.0.1:{hole.port}/0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while _leased(dsn) < 100:  # its first batch, claimed and hanging in the broker
                assert hung.poll() is None and time.monotonic() < deadline, "the relay never claimed a batch"
                time.sleep(0.05)
            claimed_at = time.monotonic()
            while time.monotonic() - claimed_at < 2 * lease:  # alive but slow: it keeps the batch
                assert _leased(dsn) == 100, "a live relay's claim ran out"
                time.sleep(0.1)
        finally:
            hung.kill()
            hung.wait()
        killed_at = time.monotonic()
        successor = subprocess.Popen(relay_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = killed_at + lease + 15
            while len(published := [f["event_id"] for _, f in client.xrange(stream)]) < len(event_ids):
                assert time.monotonic() < deadline, f"{len(published)} of {len(event_ids)} published"
                time.sleep(0.02)
            took = time.monotonic() - killed_at
        finally:
            successor.send_signal(signal.SIGTERM)
            successor.wait(timeout=15)
        print(f"the killed relay's batch was published {took:.2f} s after the kill (lease {lease} s)")
        assert sorted(published) == sorted(event_ids), "every event once (the hung relay's reached no Redis)"
        assert took <= lease + 3.0, f"taken over after {took:.2f} s"
    finally:
        hole.close()
        client.delete(stream)
        client.close()
