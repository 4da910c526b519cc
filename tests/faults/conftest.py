"""Fixtures of the fault suite: a private PostgreSQL cluster and a private Redis per test, so that
stopping, freezing or killing them never touches the machine's shared services (other suites run
against those at the same time). Each is torn down even when the test fails — a frozen process is
thawed first. Under CI=true a missing binary fails the run instead of skipping."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.faults.harness import RedisServer, postgres_pids, signal_all
from tests.ops.pgcluster import Cluster, Tools, Unavailable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: breaks a real process or connection (`pytest tests/faults`)")


@pytest.fixture
def private_pg() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster on a free port; the test may stop, kill or freeze it."""
    with contextlib.ExitStack() as stack:
        try:
            tools = stack.enter_context(Tools.workspace())
        except Unavailable as e:
            unavailable(str(e))
        cluster = Cluster.init(tools, "faults")
        cluster.configure(fsync="off", max_connections=50)  # the machine's disk is shared with other suites
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(OSError, ValueError):
                signal_all(postgres_pids(cluster), signal.SIGCONT)
            cluster.running = cluster._postmaster_pid() is not None
            cluster.stop("immediate")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port; the test may stop, start or freeze it."""
    import shutil

    if shutil.which("redis-server") is None:
        unavailable("redis-server (the binary, for a private instance)")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.kill()
