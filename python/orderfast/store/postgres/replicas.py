"""Read replicas: pools to PostgreSQL standbys, what each has replayed, and which may serve a read.

A poller in each worker asks, every ``POLL_INTERVAL``, the primary for its WAL position and each
replica for what it has replayed (``pg_last_wal_replay_lsn()``). A replica may serve a read when:

- it answered the last poll (a replica that is down, or not a standby, serves nothing; a read that
  fails on it marks it so until it answers again, and the read goes to the primary);
- it has replayed what the primary had ``max_lag`` seconds ago (a replica whose replay is paused or
  far behind serves nothing: clients without a position see data at most about that old);
- it has replayed the position the read carries, if any (read-your-writes: ``consistency``).

Otherwise the read goes to the primary. Replicas that qualify take reads in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import asyncpg

from orderfast.resilience.breaker import Breaker
from orderfast.store.consistency import format_position, parse_position

log = logging.getLogger("orderfast.replicas")

POLL_INTERVAL = 0.1  # seconds between readings of every replica's replay position
POLL_TIMEOUT = 0.5  # a replica that does not answer a reading in this long serves nothing
UNKNOWN = -1


class Replica:
    __slots__ = ("breaker", "dsn", "name", "pool", "replayed")

    def __init__(self, dsn: str, name: str, breaker: Breaker) -> None:
        self.dsn = dsn
        self.name = name
        self.breaker = breaker
        self.pool: asyncpg.Pool | None = None
        self.replayed = UNKNOWN  # its replay position at the last reading; UNKNOWN: serves nothing

    def lost(self) -> None:
        """A read failed on it: no more reads until a reading says it is back."""
        self.replayed = UNKNOWN


def _lsn(value: object) -> int:
    return UNKNOWN if value is None else (parse_position(str(value)) or UNKNOWN)


class ReadReplicas:
    def __init__(
        self,
        dsns: list[str],
        *,
        max_lag: float,
        max_size: int,
        statement_timeout: float | None,
        failures: int = 5,
        cooldown: float = 1.0,
    ) -> None:
        self.replicas = [
            Replica(dsn, f"replica{i}", Breaker(f"postgresql-replica{i}", failures=failures, cooldown=cooldown))
            for i, dsn in enumerate(dsns)
        ]
        self._max_lag = max_lag
        self._max_size = max_size
        self._statement_timeout = statement_timeout
        # (monotonic time, primary position) readings, oldest first, kept for max_lag and a bit.
        self._primary: deque[tuple[float, int]] = deque()
        self._turn = 0
        self._poller: asyncio.Task[None] | None = None
        self.written = 0  # the highest position a write of this process has committed at

    async def open(self, primary: asyncpg.Pool) -> None:
        timeout = self._statement_timeout
        for r in self.replicas:
            # min_size 0: a replica that is down at start delays nothing; it serves once it answers.
            r.pool = await asyncpg.create_pool(
                r.dsn,
                min_size=0,
                max_size=self._max_size,
                command_timeout=timeout,
                server_settings={} if timeout is None else {"statement_timeout": str(max(1, round(timeout * 1000)))},
            )
        self._poller = asyncio.create_task(self._poll(primary), name="orderfast-replica-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        for r in self.replicas:
            if r.pool is not None:
                await r.pool.close()
                r.pool = None

    def note_written(self, position: str | None) -> None:
        if position is not None and (p := parse_position(position)) is not None and p > self.written:
            self.written = p

    def written_position(self) -> str | None:
        return format_position(self.written) if self.written else None

    def pick(self, after: int) -> Replica | None:
        """A replica that may serve a read carrying position ``after`` (0: none), in turn; or None."""
        floor = self._fresh_floor()
        if floor is None:
            return None
        need = max(after, floor)
        n = len(self.replicas)
        for i in range(n):
            r = self.replicas[(self._turn + i) % n]
            if r.replayed >= need and r.replayed != UNKNOWN:
                self._turn = (self._turn + i + 1) % n
                return r
        return None

    def _fresh_floor(self) -> int | None:
        """The primary's position ``max_lag`` ago (the newest reading at least that old; the oldest
        while none is): what a replica must have replayed to serve a read at all."""
        readings = self._primary
        if not readings:
            return None
        cutoff = time.monotonic() - self._max_lag
        floor = readings[0][1]
        for taken, position in readings:
            if taken > cutoff:
                break
            floor = position
        return floor

    async def _poll(self, primary: asyncpg.Pool) -> None:
        while True:
            started = time.monotonic()
            try:
                async with asyncio.timeout(POLL_TIMEOUT), primary.acquire() as conn:
                    position = _lsn(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
                if position != UNKNOWN:
                    self._primary.append((started, position))
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass  # the primary's own breaker and probes report it; readings resume with it
            keep = started - self._max_lag - 1.0
            while len(self._primary) > 1 and self._primary[1][0] < keep:
                self._primary.popleft()
            await asyncio.gather(*(self._read(r) for r in self.replicas))
            await asyncio.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - started)))

    async def _read(self, r: Replica) -> None:
        if r.pool is None:
            return
        before = r.replayed
        try:
            async with asyncio.timeout(POLL_TIMEOUT), r.pool.acquire() as conn:
                r.replayed = _lsn(await conn.fetchval("SELECT pg_last_wal_replay_lsn()::text"))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            r.replayed = UNKNOWN
            if before != UNKNOWN:
                log.warning("read replica %s unreachable, reads go to the primary: %s", r.name, type(e).__name__)
            return
        if before == UNKNOWN and r.replayed != UNKNOWN:
            log.info("read replica %s serving reads", r.name)
