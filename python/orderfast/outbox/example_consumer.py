"""An example consumer: per-customer order statistics, exactly once, from the order stream.

    python -m orderfast.outbox.example_consumer --help

Keeps ``order_stats`` (orders created, paid, canceled, refunded amount per customer) in
PostgreSQL; each event's update and its inbox row commit together. It prints one line when it
starts, a progress line now and then, and a summary when SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as redis

from orderfast.config import ConfigError, Settings
from orderfast.outbox.consumer import PostgresInbox, StreamConsumer
from orderfast.outbox.publisher import stream_for

CONSUMER = "order-stats"
COLUMN = {"order.created": "created", "order.paid": "paid", "order.canceled": "canceled"}
PROG = "python -m orderfast.outbox.example_consumer"
TAG = "order-stats"  # the first word of every line this program prints
CONNECT_TIMEOUT = 10.0


@dataclass
class Tally:
    """What the consumer did: events handled (acknowledged), of them those its inbox already had
    (duplicates), and entries it took over from a consumer's pending list (reclaimed)."""

    handled: int = 0
    duplicates: int = 0
    reclaimed: int = 0

    def fields(self) -> str:
        return f"handled={self.handled} duplicates={self.duplicates} reclaimed={self.reclaimed}"


async def setup(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS order_stats (customer_id text PRIMARY KEY, created int NOT NULL DEFAULT 0, "
            "paid int NOT NULL DEFAULT 0, canceled int NOT NULL DEFAULT 0, refunded_minor bigint NOT NULL DEFAULT 0)"
        )


def handler(inbox: PostgresInbox, tally: Tally | None = None) -> Any:
    async def handle(envelope: dict[str, Any]) -> None:
        data = envelope["data"]
        customer = data["customer_id"]
        column = COLUMN.get(envelope["type"])

        async def effects(conn: asyncpg.Connection) -> None:
            await conn.execute("INSERT INTO order_stats (customer_id) VALUES ($1) ON CONFLICT DO NOTHING", customer)
            if column is not None:
                await conn.execute(f"UPDATE order_stats SET {column} = {column} + 1 WHERE customer_id = $1", customer)
            elif envelope["type"] == "order.refunded":
                await conn.execute(
                    "UPDATE order_stats SET refunded_minor = refunded_minor + $2 WHERE customer_id = $1",
                    customer,
                    int(data["change"]["amount"]),
                )

        fresh = await inbox.process_once(envelope["id"], effects)
        if tally is not None:
            tally.handled += 1
            tally.duplicates += not fresh

    return handle


async def build(
    pool: asyncpg.Pool,
    client: redis.Redis,
    *,
    prefix: str,
    name: str | None = None,
    reclaim_idle_ms: int = 30_000,
    stream: str | None = None,
    group: str = CONSUMER,
    batch: int = 50,
    tally: Tally | None = None,
) -> StreamConsumer:
    """The consumer, its tables and its group made ready. The inbox is always keyed ``order-stats``
    (it guards the ``order_stats`` table, whichever group reads), so an event counts once even
    when two groups read the same stream."""
    await setup(pool)
    inbox = PostgresInbox(pool, CONSUMER)
    await inbox.setup()
    consumer = StreamConsumer(
        client,
        stream or stream_for("order", prefix),
        group,
        name or default_name(),
        handler(inbox, tally),
        batch=batch,
        reclaim_idle_ms=reclaim_idle_ms,
    )
    await consumer.ensure_group()
    return consumer


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# -- the command line


def masked(url: str) -> str:
    """The URL without its password (in the user part or a ``password=`` query parameter)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
        query = "&".join(
            f"{key}=***" if key.lower().endswith("password") else f"{key}{sep}{value}"
            for key, sep, value in (p.partition("=") for p in parts.query.split("&") if p)
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(unparseable URL)"


def _redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError("must be a redis://, rediss:// or unix:// URL")
    return value


def _postgres_url(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError("must be a postgresql:// URL")
    return value


def _count(least: int) -> Any:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if number < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}")
        return number

    return parse


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


DESCRIPTION = """\
Reads the order event stream (Redis Streams) as a member of a consumer group
and keeps per-customer order statistics in PostgreSQL (table order_stats:
orders created, paid and canceled, amount refunded). Each event's id is
recorded in a PostgreSQL inbox (table consumer_inbox) in the same transaction
as its effect, so an event delivered twice counts once. Entries a stopped
consumer read but never acknowledged are reclaimed after --reclaim-idle-ms.
Missing tables and the group are created.
"""

EPILOG = """\
output (stdout, one line each, passwords masked):
  order-stats start redis=URL postgres=URL stream=S group=G consumer=C inbox=I
  order-stats progress handled=N duplicates=N reclaimed=N rate=N/s
  order-stats stopped reason=SIGTERM handled=N duplicates=N reclaimed=N seconds=T
handled: events processed and acknowledged; duplicates: of them, those the
inbox already had (skipped); reclaimed: those taken over from a consumer's
pending entries. SIGINT or SIGTERM stops it after the batch in hand, with the
summary, exit status 0. A Redis or PostgreSQL error: one line on stderr, the
summary (reason=error), exit status 1.

Prefer the environment for a URL with a password: command lines are visible
to other users of the machine.
"""


def build_parser(settings: Settings | None) -> argparse.ArgumentParser:
    redis_url = settings.redis_url.reveal() if settings and settings.redis_url else None
    database_url = settings.database_url.reveal() if settings and settings.database_url else None
    prefix = (settings or Settings()).stream_prefix
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--redis-url",
        type=_redis_url,
        default=redis_url,
        metavar="URL",
        help="the Redis holding the stream (default: ORDERFAST_REDIS_URL"
        + (f", now {masked(redis_url)})" if redis_url else ", unset)"),
    )
    parser.add_argument(
        "--database-url",
        type=_postgres_url,
        default=database_url,
        metavar="URL",
        help="the PostgreSQL for order_stats and the inbox (default: ORDERFAST_DATABASE_URL"
        + (f", now {masked(database_url)})" if database_url else ", unset)"),
    )
    parser.add_argument(
        "--stream",
        default=stream_for("order", prefix),
        metavar="NAME",
        help="the stream to read (default: ORDERFAST_STREAM_PREFIX + 'order': %(default)s)",
    )
    parser.add_argument("--group", default=CONSUMER, metavar="NAME", help="the consumer group (default: %(default)s)")
    parser.add_argument(
        "--consumer",
        default=None,
        metavar="NAME",
        help="this consumer's name within the group (default: <hostname>-<pid>)",
    )
    parser.add_argument(
        "--reclaim-idle-ms",
        type=_count(0),
        default=30_000,
        metavar="MS",
        help="take over another consumer's pending entries once idle this long (default: %(default)s)",
    )
    parser.add_argument(
        "--batch", type=_count(1), default=50, metavar="N", help="entries read at a time (default: %(default)s)"
    )
    parser.add_argument(
        "--progress-every",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="at most one progress line this often, when something was handled (0: after every batch; "
        "default: %(default)s)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """The arguments, defaults from the ORDERFAST_* settings. ``--help`` and every mistake exit here
    (0 and 2), before anything connects."""
    try:
        settings: Settings | None = Settings.from_env(env)
        problem = None
    except ConfigError as e:  # still offer --help; refuse to run below
        settings, problem = None, e
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    if problem is not None:
        parser.error(f"configuration error: {problem}")
    if args.redis_url is None:
        parser.error("no Redis: give --redis-url or set ORDERFAST_REDIS_URL")
    if args.database_url is None:
        parser.error("no PostgreSQL: give --database-url or set ORDERFAST_DATABASE_URL")
    args.consumer = args.consumer or default_name()
    return args


def say(*words: str) -> None:
    print(TAG, *words, flush=True)


async def consume(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    stopped_by: list[str] = []
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        stopped_by.append(name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)

    tally = Tally()
    started = time.monotonic()
    say(
        "start",
        f"redis={masked(args.redis_url)}",
        f"postgres={masked(args.database_url)}",
        f"stream={args.stream}",
        f"group={args.group}",
        f"consumer={args.consumer}",
        f"inbox={CONSUMER}",
    )
    client = redis.Redis.from_url(args.redis_url, socket_connect_timeout=CONNECT_TIMEOUT)
    pool: asyncpg.Pool | None = None
    status = 0
    try:
        pool = await asyncpg.create_pool(args.database_url, min_size=1, max_size=4, timeout=CONNECT_TIMEOUT)
        consumer = await build(
            pool,
            client,
            prefix="",
            stream=args.stream,
            group=args.group,
            name=args.consumer,
            reclaim_idle_ms=args.reclaim_idle_ms,
            batch=args.batch,
            tally=tally,
        )
        reported = (0, 0, 0)
        reported_at = time.monotonic()
        while not stop.is_set():
            await consumer.run_once()  # returns within a second when idle: a stop waits no longer
            tally.reclaimed = consumer.reclaimed
            now = time.monotonic()
            counts = (tally.handled, tally.duplicates, tally.reclaimed)
            if counts != reported and now - reported_at >= args.progress_every:
                rate = (tally.handled - reported[0]) / max(now - reported_at, 1e-3)
                say("progress", tally.fields(), f"rate={rate:.0f}/s")
                reported, reported_at = counts, now
    except (OSError, TimeoutError, redis.RedisError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        print(f"{TAG} error {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        stopped_by.append("error")
        status = 1
    finally:
        await client.aclose()
        if pool is not None:
            await pool.close()
    say("stopped", f"reason={stopped_by[0]}", tally.fields(), f"seconds={time.monotonic() - started:.1f}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(consume(args))


if __name__ == "__main__":
    sys.exit(main())
