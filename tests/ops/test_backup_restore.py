"""The restore drill of docs/runbooks/backup-restore.md, run for real on a private PostgreSQL cluster.

One timeline, shared by the tests of this module:

1. ``initdb`` a throwaway primary with WAL archiving (``archive_timeout`` = ARCHIVE_TIMEOUT s) into a
   temporary archive; ``orderfast migrate --seed-demo``; ``orderfast serve``; customers create (and
   cancel) orders continuously from threads until the primary is gone.
2. Under that load: a base backup (``pg_basebackup -X stream -c fast``, checked by ``pg_verifybackup``),
   then a ``pg_dump -Fc`` (of an exported snapshot, so the rows it holds can be counted exactly), then a
   named restore point (``pg_create_restore_point``), noting which orders were acknowledged (201) before
   it was asked for and which were sent after it returned.
3. The load goes on; once the restore point's WAL segment is archived, the primary crashes
   (``pg_ctl stop -m immediate``) shortly before its next forced WAL switch, and its data directory is
   deleted: only the base backup and the WAL archive remain.
4. Restores, each into a new data directory on another port: to the restore point (point-in-time
   recovery: RTO measured from the copy of the base backup to "accepting connections and
   ``orderfast reconcile`` clean"), and to the end of the archive (what a lost primary costs: RPO).

PostgreSQL's server binaries are needed: locally the module skips without them, under CI=true it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from tests.ops.pgcluster import Cluster, Tools, query, wait_promoted, wait_until
from tests.ops.service import ORDER_BODY, PRODUCT, Attempt, Load, Service, cli, orderfast_env

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

ARCHIVE_TIMEOUT = 2  # seconds: at most this much WAL (plus up to a second) waits to be archived
COUNTED = ("orders", "order_lines", "outbox", "idempotency_keys", "products", "promotions")
RESTORE_POINT = "drill"


@dataclass
class Drill:
    """What happened on the primary, and what is left of it: the base backup, the WAL archive, a dump."""

    tools: Tools
    archive: Path
    base: Path
    dump: Path
    dump_counts: dict[str, int]
    attempts: list[Attempt]
    restore_point_asked: float  # monotonic, just before pg_create_restore_point
    restore_point_made: float  # monotonic, just after it returned
    crashed_at: float  # monotonic, just before the immediate stop
    archived_age_at_crash: float  # seconds since the last WAL segment was archived, at the crash
    seconds: dict[str, float] = field(default_factory=dict)

    def created(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 201]

    def around_restore_point(self) -> tuple[set[str | None], set[str | None], set[str | None]]:
        """Orders acknowledged before the restore point was asked for, sent after it was made, and
        in flight meanwhile (these may fall on either side)."""
        created = self.created()
        before = {a.order_id for a in created if a.answered < self.restore_point_asked}
        after = {a.order_id for a in created if a.sent > self.restore_point_made}
        return before, after, {a.order_id for a in created} - before - after


@dataclass
class Restored:
    cluster: Cluster
    env: dict[str, str]
    reconcile: subprocess.CompletedProcess[str]
    order_ids: set[str]
    seconds: dict[str, float]


def _orderfast_db(cluster: Cluster, tools: Tools, database: str = "orderfast") -> dict[str, str]:
    data = tools.home / f"orderfast-{cluster.name}-{database}"
    data.mkdir(exist_ok=True)
    return orderfast_env(cluster.dsn(database), data)


async def _dump_of_a_snapshot(tools: Tools, primary: Cluster, path: Path) -> dict[str, int]:
    """``pg_dump -Fc`` of a snapshot exported by a transaction that also counts its rows: the dump
    holds exactly those rows, whatever commits meanwhile."""
    conn = await asyncpg.connect(primary.dsn("orderfast"), timeout=5)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            counts = {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in COUNTED}
            argv = tools.pg("pg_dump", *primary.client_args(), "-Fc", "--snapshot", snapshot, "-f", path, "orderfast")
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=tools.home, env=tools.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
            if proc.returncode != 0:
                raise RuntimeError(f"pg_dump exited {proc.returncode}: {(out + err).decode()}")
    finally:
        await conn.close()
    return counts


@pytest.fixture(scope="module")
def drill(tools: Tools) -> Drill:
    archive = tools.mkdir(tools.home / "wal-archive")
    base = tools.home / "base-backup"
    dump = tools.home / "orderfast.dump"
    seconds: dict[str, float] = {}
    primary = Cluster.init(tools, "primary")
    primary.configure(
        wal_level="replica",
        archive_mode="on",
        archive_command=f"test ! -f {archive}/%f && cp %p {archive}/%f.part && mv {archive}/%f.part {archive}/%f",
        archive_timeout=ARCHIVE_TIMEOUT,
    )
    with contextlib.ExitStack() as running:  # unwound in reverse: load, server, primary
        primary.start()
        running.callback(primary.stop, "immediate")
        primary.query("CREATE DATABASE orderfast")
        env = _orderfast_db(primary, tools)
        migrated = cli(env, "migrate", "--seed-demo")
        assert migrated.returncode == 0, migrated.stderr
        service = Service(env, tools.home / "primary-orderfast.log")
        service.start()
        running.callback(service.stop)
        with service.client("drill-admin", "admin") as admin:
            assert admin.put("/v1/products/DRILL-1", json=PRODUCT).status_code == 201
        load = Load(service.base_url)
        load.start()
        running.callback(load.stop)

        def created(more: int) -> None:
            n = len(load.created())
            wait_until(lambda: len(load.created()) >= n + more, timeout=30, what=f"{more} more orders")

        created(100)
        started = time.monotonic()
        tools.run(tools.pg("pg_basebackup", *primary.client_args(), "-D", base, "-X", "stream", "-c", "fast"))
        seconds["base_backup"] = time.monotonic() - started
        tools.run(tools.pg("pg_verifybackup", base))

        created(100)
        started = time.monotonic()
        dump_counts = asyncio.run(_dump_of_a_snapshot(tools, primary, dump))
        seconds["pg_dump"] = time.monotonic() - started

        created(100)
        asked = time.monotonic()
        lsn = primary.query("SELECT pg_create_restore_point($1)", RESTORE_POINT)[0][0]
        made = time.monotonic()
        walfile = primary.query("SELECT pg_walfile_name($1)", lsn)[0][0]

        # Writing goes on until the restore point's segment is in the archive (archive_timeout switches
        # segments) and orders sent after it have been acknowledged ...
        wait_until(lambda: (archive / walfile).exists(), timeout=ARCHIVE_TIMEOUT + 30, what=f"{walfile} archived")
        wait_until(
            lambda: sum(a.sent > made for a in load.created()) >= 100,
            timeout=30,
            what="100 orders after the restore point",
        )

        # ... then the primary crashes late in an archive_timeout interval, close to the most acknowledged
        # WAL that can be waiting to be archived (unless segments fill up faster than archive_timeout
        # switches them: then the crash comes at the deadline).
        deadline = time.monotonic() + 4 * ARCHIVE_TIMEOUT
        while True:
            age, failed = primary.query(
                "SELECT extract(epoch FROM clock_timestamp() - last_archived_time)::float8, failed_count "
                "FROM pg_stat_archiver"
            )[0]
            assert failed == 0, f"archive_command failed:\n{primary.log_tail()}"
            if age >= ARCHIVE_TIMEOUT - 0.3 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        crashed_at = time.monotonic()
        primary.stop("immediate")
    # The primary is lost: only the base backup and the WAL archive remain.
    shutil.rmtree(primary.datadir)
    return Drill(tools, archive, base, dump, dump_counts, list(load.attempts), asked, made, crashed_at, age, seconds)


def _restore(drill: Drill, name: str, **target: str) -> Restored:
    """The runbook's restore: a copy of the base backup, restore_command from the archive, a recovery
    target (none: to the end of the archive), recovery.signal, start, promotion, reconcile."""
    tools = drill.tools
    started = time.monotonic()
    cluster = Cluster.copy_of(tools, drill.base, name)
    cluster.configure(
        # A drill's copy must not archive into the production archive (see the runbook).
        archive_mode="off",
        restore_command=f"cp {drill.archive}/%f %p",
        **target,
    )
    tools.write(cluster.datadir / "recovery.signal", "")
    copied = time.monotonic()
    try:
        cluster.start()
        wait_promoted(cluster)
        promoted = time.monotonic()
        env = _orderfast_db(cluster, tools)
        reconcile = cli(env, "reconcile")
        clean = time.monotonic()
        ids = {str(r[0]) for r in cluster.query("SELECT id FROM orders", database="orderfast")}
    except BaseException:
        cluster.stop("immediate")
        raise
    seconds = {
        "copy": copied - started,
        "recovery": promoted - copied,
        "reconcile": clean - promoted,
        "rto": clean - started,
    }
    return Restored(cluster, env, reconcile, ids, seconds)


@pytest.fixture(scope="module")
def pitr(drill: Drill) -> Iterator[Restored]:
    restored = _restore(drill, "restored-pitr", recovery_target_name=RESTORE_POINT, recovery_target_action="promote")
    try:
        yield restored
    finally:
        restored.cluster.stop()


@pytest.fixture(scope="module")
def latest(drill: Drill) -> Iterator[Restored]:
    restored = _restore(drill, "restored-latest")
    try:
        yield restored
    finally:
        restored.cluster.stop()


def test_point_in_time_recovery_keeps_exactly_what_was_acknowledged_before_the_restore_point(
    drill: Drill, pitr: Restored
) -> None:
    before, after, in_flight = drill.around_restore_point()
    acknowledged = before | after | in_flight
    assert len(before) >= 300 and len(after) >= 100, "the drill wrote too little on either side"
    assert before - pitr.order_ids == set(), "orders acknowledged before the restore point are missing"
    assert after & pitr.order_ids == set(), "orders sent after the restore point came back"
    # Orders in flight while the restore point was made may be on either side; nothing else is there.
    assert pitr.order_ids - acknowledged == set()


def test_restored_databases_reconcile_clean_and_need_no_migration(pitr: Restored, latest: Restored) -> None:
    for restored in (pitr, latest):
        assert restored.reconcile.returncode == 0, restored.reconcile.stdout + restored.reconcile.stderr
        assert restored.reconcile.stdout.strip().endswith("0 discrepancies")
        migrated = cli(restored.env, "migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout.strip() == "postgres: schema up to date"


def _lost(drill: Drill, latest: Restored) -> tuple[int, float]:
    """Acknowledged orders the restore to the end of the archive lacks, and how long before the crash
    the first of them was acknowledged (0 when none is lost)."""
    lost = [a.answered for a in drill.created() if a.order_id not in latest.order_ids]
    return len(lost), (drill.crashed_at - min(lost) if lost else 0.0)


def test_recovery_to_the_end_of_the_archive_loses_at_most_archive_timeout(drill: Drill, latest: Restored) -> None:
    """The primary and its pg_wal are gone: what was acknowledged but not yet archived is lost, and
    nothing older."""
    lost, window = _lost(drill, latest)
    # archive_timeout is checked in whole seconds: a segment may wait up to a second more, then the copy.
    assert window <= ARCHIVE_TIMEOUT + 2, f"{lost} acknowledged orders lost over {window:.2f} s"
    older = [a for a in drill.created() if a.answered < drill.crashed_at - window]
    assert all(a.order_id in latest.order_ids for a in older)


def test_after_a_restore_lost_orders_idempotency_keys_are_forgotten(drill: Drill, pitr: Restored) -> None:
    """Pointing the service at the restored database: a retry of an order from before the restore point
    is a replay; a retry of an order lost after it creates a new order."""
    created = drill.created()
    kept = max((a for a in created if a.answered < drill.restore_point_asked), key=lambda a: a.answered)
    lost = min((a for a in created if a.sent > drill.restore_point_made), key=lambda a: a.sent)
    service = Service(pitr.env, drill.tools.home / "restored-orderfast.log")
    service.start()
    try:
        for attempt, replayed in ((kept, True), (lost, False)):
            with service.client(attempt.customer) as http:
                if not replayed:
                    assert http.get(f"/v1/orders/{attempt.order_id}").status_code == 404
                r = http.post(
                    "/v1/orders",
                    content=ORDER_BODY,
                    headers={"idempotency-key": attempt.key, "content-type": "application/json"},
                )
                assert r.status_code == 201, r.text
                assert (r.headers.get("idempotent-replayed") == "true") is replayed
                assert (r.json()["id"] == attempt.order_id) is replayed
    finally:
        service.stop()
    assert cli(pitr.env, "reconcile").returncode == 0


@pytest.fixture(scope="module")
def from_dump(drill: Drill, pitr: Restored) -> tuple[dict[str, str], float]:
    """The runbook's pg_restore of the dump into a new database (on the restored cluster); its
    orderfast environment and how long pg_restore took."""
    cluster, tools = pitr.cluster, drill.tools
    cluster.query("CREATE DATABASE from_dump TEMPLATE template0")
    started = time.monotonic()
    options = ("-d", "from_dump", "--no-owner", "--single-transaction", "--exit-on-error")
    tools.run(tools.pg("pg_restore", *cluster.client_args(), *options, drill.dump))
    return _orderfast_db(cluster, tools, "from_dump"), time.monotonic() - started


def test_pg_dump_round_trip(drill: Drill, from_dump: tuple[dict[str, str], float]) -> None:
    """The small-shop backup: the dump taken under load restores, row for row, into another cluster."""
    assert drill.dump_counts["orders"] >= 200 and drill.dump_counts["idempotency_keys"] >= 200
    env = from_dump[0]
    counts = {t: int(query(env["ORDERFAST_DATABASE_URL"], f"SELECT count(*) FROM {t}")[0][0]) for t in COUNTED}
    assert counts == drill.dump_counts
    migrated = cli(env, "migrate")
    assert migrated.stdout.strip() == "postgres: schema up to date", migrated.stderr
    reconcile = cli(env, "reconcile")
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def test_drill_report(
    drill: Drill,
    pitr: Restored,
    latest: Restored,
    from_dump: tuple[dict[str, str], float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The numbers the runbook quotes, printed on every run."""
    s = drill.seconds
    before, after, in_flight = drill.around_restore_point()
    lost, window = _lost(drill, latest)
    lines = [
        f"restore drill ({len(drill.created())} orders acknowledged; base backup {_size(drill.base) / 2**20:.0f} MiB "
        f"in {s['base_backup']:.2f} s; {len(list(drill.archive.glob('0*')))} archived WAL files; "
        f"archive_timeout={ARCHIVE_TIMEOUT}s)",
        f"  RPO, primary lost: {window:.2f} s of acknowledged orders ({lost}) lost; crash "
        f"{drill.archived_age_at_crash:.2f} s after the last archived segment",
        f"  PITR to a restore point: {len(before & pitr.order_ids)} of {len(before)} orders acknowledged before it "
        f"kept; {len(after & pitr.order_ids)} of {len(after)} sent after it; "
        f"{len(in_flight & pitr.order_ids)} of {len(in_flight)} in flight",
        f"  RTO, PITR to a restore point: {pitr.seconds['rto']:.2f} s (copy {pitr.seconds['copy']:.2f}, recovery "
        f"{pitr.seconds['recovery']:.2f}, reconcile {pitr.seconds['reconcile']:.2f})",
        f"  RTO, to the end of the archive: {latest.seconds['rto']:.2f} s (copy {latest.seconds['copy']:.2f}, "
        f"recovery {latest.seconds['recovery']:.2f}, reconcile {latest.seconds['reconcile']:.2f})",
        f"  pg_dump under load: {s['pg_dump']:.2f} s ({_size(drill.dump) / 2**10:.0f} KiB), "
        f"pg_restore {from_dump[1]:.2f} s",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert pitr.seconds["rto"] < 60 and latest.seconds["rto"] < 60
