"""SIGKILL of the whole server under a create-order burst on PostgreSQL, a database audit, then a
restart and every client's retry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.audit import assert_whole, snapshot, wait_quiet
from tests.faults.harness import Creates, fault_server, kill_group, order_id, serving, settle

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.postgres]


def test_sigkill_under_load_loses_nothing_and_every_retry_replays_or_creates_once(
    pg_database_factory: Callable[[], str], tmp_path: Path
) -> None:
    """Fault: every process of a two-worker server is SIGKILLed at once (no shutdown hook, no flush)
    while six customers create orders, each with its own Idempotency-Key.

    Promise: no acknowledged order is lost, partial or duplicated, and stock is conserved (the audit
    reads the tables directly); after a restart, the retry of every acknowledged key replays the
    acknowledged response byte for byte (same Location, ``Idempotent-Replayed: true``), and the retry
    of every key whose answer the kill swallowed returns the order if it had committed, else creates
    it — exactly one order per key in the end."""
    server = fault_server(tmp_path, pg_database_factory(), workers=2)
    with serving(server):
        with Creates(server, customers=6, stop_on_failure=True) as burst:
            burst.wait_for("orders acknowledged before the kill", 60)
            kill_group(server.proc)
        attempts = burst.done()
        acked = [a for a in attempts if a.status == 201]
        unanswered = [a for a in attempts if a.status == 0]
        assert len(acked) + len(unanswered) == len(attempts), "before the kill, every create succeeded"
        wait_quiet(server.env)  # what the dead server had sent the database has finished
        crashed = snapshot(server.env)
        assert_whole(crashed, [order_id(a) for a in acked])
        committed = {key: body for (_, key), (_, body) in crashed.keys.items()}

        server.start()  # the same port, the same database
        for a in acked:
            again = settle(server, a)
            assert (again.status, again.content) == (201, a.content), "the replay is the acknowledged response"
            assert again.headers["location"] == a.headers["location"]
            assert again.headers.get("idempotent-replayed") == "true"
        answers = {a.key: order_id(a) for a in acked}
        for a in unanswered:
            again = settle(server, a)
            assert again.status == 201, again.content
            if a.key in committed:  # it committed before the kill: the retry returns it
                assert again.headers.get("idempotent-replayed") == "true"
                assert again.content == committed[a.key]
            else:
                assert "idempotent-replayed" not in again.headers, "created now, once"
            answers[a.key] = order_id(again)

    late = sum(a.key in committed for a in unanswered)
    print(f"\nserver SIGKILL: {len(acked)} acknowledged, {len(unanswered)} unanswered of which {late} had committed")
    db = snapshot(server.env)
    assert all(n == 1 for n in Counter(key for _, key in db.keys).values()), "one record per key"
    assert {key: oid for (_, key), (oid, _) in db.keys.items()} == answers, "each key: the order its client holds"
    assert_whole(db, answers.values())
