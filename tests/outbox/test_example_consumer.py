"""The example consumer's command line, run as a user runs it: ``--help`` and mistakes connect
nowhere; a real run against Redis and PostgreSQL reports what it handled and stops cleanly."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from orderfast.outbox import example_consumer
from orderfast.outbox.publisher import RedisStreamsPublisher
from orderfast.store.postgres import PostgresStore
from tests.conftest import run_blocking
from tests.outbox.test_consumer import publish_paid_orders

COMMAND = [sys.executable, "-m", "orderfast.outbox.example_consumer"]
PASSWORD = "hunter2-not-shown"
DEADLINE = 60.0  # seconds any awaited line may take; only a failing test waits that long


def child_env(**settings: str) -> dict[str, str]:
    """This environment without any ORDERFAST_* setting of its own, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFAST_")}
    return env | {f"ORDERFAST_{k}": v for k, v in settings.items()}


@pytest.fixture
def silent_listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two listening sockets nobody accepts on: a connection attempt would sit in their backlog."""
    pair = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        s.setblocking(False)
        pair.append(s)
    try:
        yield pair[0], pair[1]
    finally:
        for s in pair:
            s.close()


def listener_env(listeners: tuple[socket.socket, socket.socket]) -> dict[str, str]:
    r, p = (s.getsockname()[1] for s in listeners)
    return child_env(
        REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{r}/0",
        DATABASE_URL=f"postgresql://app:{PASSWORD}@127.0.0.1:{p}/orders",
    )


def assert_never_connected(listeners: tuple[socket.socket, socket.socket]) -> None:
    for s in listeners:
        with pytest.raises(BlockingIOError):
            s.accept()


def test_help_prints_usage_and_connects_nowhere(silent_listeners: tuple[socket.socket, socket.socket]) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [*COMMAND, "--help"],
        env=listener_env(silent_listeners),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15, "help returns at once"
    assert_never_connected(silent_listeners)
    usage = " ".join(done.stdout.split())
    assert usage.startswith("usage: python -m orderfast.outbox.example_consumer")
    for words in ("consumer group", "inbox", "same transaction", "per-customer order statistics", "SIGTERM"):
        assert words in usage
    for option in ("--redis-url", "--database-url", "--stream", "--group", "--consumer", "--reclaim-idle-ms"):
        assert option in usage
    assert "ORDERFAST_REDIS_URL, now redis://:***@127.0.0.1:" in usage, "the default, from the environment"
    assert PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "unset", "complaint"),
    [
        (["--bogus"], None, "unrecognized arguments: --bogus"),
        (["--batch", "0"], None, "argument --batch: must be at least 1"),
        (["--reclaim-idle-ms", "soon"], None, "argument --reclaim-idle-ms: not a whole number"),
        (["--progress-every", "-1"], None, "argument --progress-every: must be 0 or more"),
        (["--database-url", "mysql://db/orders"], None, "must be a postgresql:// URL"),
        ([], "ORDERFAST_REDIS_URL", "give --redis-url or set ORDERFAST_REDIS_URL"),
        ([], "ORDERFAST_DATABASE_URL", "give --database-url or set ORDERFAST_DATABASE_URL"),
    ],
)
def test_bad_arguments_exit_2_before_connecting(
    silent_listeners: tuple[socket.socket, socket.socket], args: list[str], unset: str | None, complaint: str
) -> None:
    env = listener_env(silent_listeners)
    if unset:
        del env[unset]
    done = subprocess.run([*COMMAND, *args], env=env, capture_output=True, text=True, timeout=DEADLINE, check=False)
    assert done.returncode == 2, done.stderr
    assert "usage:" in done.stderr and complaint in done.stderr
    assert done.stdout == ""
    assert_never_connected(silent_listeners)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/orders", "postgresql://app:***@db:5432/orders"),
        ("postgresql://app:p%40ss@h1:5432,h2:5432/orders", "postgresql://app:***@h1:5432,h2:5432/orders"),
        (
            "postgresql://app@db/orders?password=s3cret&sslmode=require",
            "postgresql://app@db/orders?password=***&sslmode=require",
        ),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://default:s3cret@cache/1", "rediss://default:***@cache/1"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert example_consumer.masked(url) == shown


class Output:
    """A process's stdout, line by line as it comes (read by a thread): tests wait on lines with a
    deadline instead of sleeping."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, wanted: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"output ended before {what}: {self.lines}")
            self.lines.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"no {what} within {DEADLINE}s: {self.lines}")

    def join(self) -> None:
        self._reader.join(timeout=DEADLINE)


def fields(line: str) -> dict[str, str]:
    """``order-stats progress handled=3 …`` → {"handled": "3", …}."""
    return dict(word.split("=", 1) for word in line.split()[2:])


def kind(line: str, name: str) -> bool:
    return line.split()[:2] == ["order-stats", name]


def with_password(dsn: str) -> tuple[str, str]:
    """The DSN with a password in it, and that password: the consumer must never print it. Under
    trust authentication (the test server's) PostgreSQL ignores one the DSN brings along."""
    parts = urlsplit(dsn)
    if parts.password or os.environ.get("PGPASSWORD"):
        return dsn, parts.password or os.environ["PGPASSWORD"]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{PASSWORD}@{host}")), PASSWORD


@contextlib.contextmanager
def running(env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """The consumer as a process, its output being read; killed at the end if still running."""
    with subprocess.Popen(
        [*COMMAND, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        out = Output(proc.stdout)
        try:
            yield proc, out
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=DEADLINE)
            out.join()  # before the pipes close


CUSTOMERS = ["alice", "bob", "carol"]
REPUBLISHED = 4  # the relay publishes these events a second time (at least once)
LEFT_PENDING = 3  # read by a consumer that died before acknowledging them


def test_a_run_reports_progress_and_stops_on_sigterm_with_a_summary(
    pg_database_factory: Callable[[], str], redis_url: str
) -> None:
    dsn, password = with_password(pg_database_factory())
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    stream = f"{prefix}order"

    async def publish_orders() -> None:
        store = PostgresStore(dsn, min_size=1, max_size=2)
        await store.open(check_schema=False)
        await store.migrate()
        publisher = RedisStreamsPublisher.from_url(redis_url, maxlen=100_000, prefix=prefix)
        try:
            await publish_paid_orders(store, publisher, CUSTOMERS * 2, again=slice(REPUBLISHED))
        finally:
            await publisher.close()
            await store.close()

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        run_blocking(publish_orders)
        entries = client.xrange(stream)
        event_ids = [f["event_id"] for _, f in entries]
        assert len(event_ids) - len(set(event_ids)) == REPUBLISHED
        # A consumer of the group reads the first entries and dies before acknowledging them.
        client.xgroup_create(stream, example_consumer.CONSUMER, id="0")
        client.xreadgroup(example_consumer.CONSUMER, "gone", {stream: ">"}, count=LEFT_PENDING)

        env = child_env(REDIS_URL=redis_url, DATABASE_URL=dsn, STREAM_PREFIX=prefix)
        args = ("--reclaim-idle-ms", "0", "--progress-every", "0", "--consumer", "cli-test")
        with running(env, *args) as (proc, out):
            begun = fields(out.wait_for(lambda line: kind(line, "start"), "start line"))
            assert (begun["stream"], begun["group"], begun["consumer"]) == (stream, "order-stats", "cli-test")
            assert begun["postgres"].count(":***@") == 1 and begun["redis"] == example_consumer.masked(redis_url)

            progress = out.wait_for(
                lambda line: kind(line, "progress") and fields(line)["handled"] == str(len(entries)),
                f"progress line with handled={len(entries)}",
            )
            assert fields(progress)["duplicates"] == str(REPUBLISHED)
            assert fields(progress)["reclaimed"] == str(LEFT_PENDING)

            proc.send_signal(signal.SIGTERM)
            summary = fields(out.wait_for(lambda line: kind(line, "stopped"), "summary line"))
            assert proc.wait(timeout=DEADLINE) == 0
            assert summary["reason"] == "SIGTERM"
            counts = (summary["handled"], summary["duplicates"], summary["reclaimed"])
            assert counts == (str(len(entries)), str(REPUBLISHED), str(LEFT_PENDING))
            assert proc.stderr is not None and proc.stderr.read() == "", "no traceback, no error"
        assert password not in "\n".join(out.lines)
        assert client.xpending(stream, example_consumer.CONSUMER)["pending"] == 0
    finally:
        client.delete(stream)
        client.close()

    async def stats() -> dict[str, tuple[int, int]]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT customer_id, created, paid FROM order_stats")
        finally:
            await conn.close()
        return {r["customer_id"]: (r["created"], r["paid"]) for r in rows}

    assert run_blocking(stats) == dict.fromkeys(CUSTOMERS, (2, 2)), "every event counted exactly once"


def test_sigint_stops_an_idle_consumer_with_a_summary(pg_database_factory: Callable[[], str], redis_url: str) -> None:
    stream = f"test:{uuid.uuid4().hex[:8]}:order"
    env = child_env(REDIS_URL=redis_url, DATABASE_URL=pg_database_factory())
    try:
        with running(env, "--stream", stream, "--group", "idle-stats") as (proc, out):
            out.wait_for(lambda line: kind(line, "start"), "start line")  # signal handlers are set by then
            proc.send_signal(signal.SIGINT)
            summary = fields(out.wait_for(lambda line: kind(line, "stopped"), "summary line"))
            assert proc.wait(timeout=DEADLINE) == 0
            assert summary["reason"] == "SIGINT" and summary["handled"] == "0"
            assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        client = redis.Redis.from_url(redis_url)
        client.delete(stream)
        client.close()
