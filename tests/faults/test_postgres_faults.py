"""PostgreSQL crashes or freezes under load: a private cluster (never the machine's shared one), a
server with a 1 s request budget, four customers creating orders throughout (see ``outage.py`` for
what is checked and audited)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.faults.harness import fault_server, postgres_pids, serving, signal_all, start_again
from tests.faults.outage import ride_out
from tests.ops.pgcluster import Cluster

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.postgres]


def test_postgres_crash_is_a_fast_503_and_the_server_recovers_when_it_is_back(
    private_pg: Cluster, tmp_path: Path
) -> None:
    """Fault: ``pg_ctl stop -m immediate`` (every backend killed, no checkpoint: a crash) for 3 s,
    then PostgreSQL started again on the same port.

    Promise: every create is answered within the budget — 201, or 503 ``store-unavailable`` with
    ``Retry-After``, never a 500 or a reset; the same server process creates orders again once
    PostgreSQL accepts connections; each 503's retry returns the truth; the audit is clean."""
    server = fault_server(tmp_path, private_pg.dsn())
    with serving(server):
        outage = ride_out(server, lambda: private_pg.stop("immediate"), lambda: start_again(private_pg), seconds=3)
    print(f"\nPostgreSQL crash: {outage}")


def test_frozen_postgres_is_a_503_within_the_budget_and_the_server_recovers_when_it_thaws(
    private_pg: Cluster, tmp_path: Path
) -> None:
    """Fault: SIGSTOP of every PostgreSQL process (the postmaster and each backend) for 4 s, then
    SIGCONT — a frozen primary, or a partition: connections stay open and say nothing, new ones are
    never accepted.

    Promise: no create waits on the silence past the request budget (1 s here, + 1 s of slack): each is
    answered 201 or 503 ``store-unavailable`` with ``Retry-After``, never a 500 or a hang; the same
    server creates orders again once PostgreSQL thaws; a create that timed out during the stall, retried
    with the same key, returns the truth — the order if it committed after all (the backend ran it once
    thawed), else one order created now; the audit is clean."""
    server = fault_server(tmp_path, private_pg.dsn())
    frozen: list[int] = []

    def freeze() -> None:
        frozen.extend(postgres_pids(private_pg))
        signal_all(frozen, signal.SIGSTOP)

    with serving(server):
        outage = ride_out(server, freeze, lambda: signal_all(frozen, signal.SIGCONT), seconds=4)
    print(f"\nfrozen PostgreSQL: {outage}")
