"""The supervisor of `serve-grpc --workers N`, with stand-in worker processes: SIGTERM reaches every
worker and the exit code says whether they all stopped cleanly; a replacement that dies at once is a
crash loop that stops everything."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

# A worker that says it is up, then exits 0 on SIGTERM (as serve-grpc does after its drain).
WORKER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    "print('up', flush=True)\n"
    "time.sleep(120)\n"
)
SUPERVISE = (
    "import sys\n"
    "from orderfast.rpc.workers import Supervisor\n"
    "argv, count = sys.argv[1:-1], int(sys.argv[-1])\n"
    "sys.exit(Supervisor(argv, count, {}, 10).run())\n"
)


def supervise(tmp_path: Path, worker: list[str], count: int) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / "out.log"
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SUPERVISE, *worker, str(count)], stdout=log, stderr=subprocess.STDOUT
        )
    return proc, out


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_sigterm_reaches_every_worker_and_a_clean_stop_exits_0(tmp_path: Path) -> None:
    proc, out = supervise(tmp_path, [sys.executable, "-c", WORKER], 3)
    try:
        deadline = time.monotonic() + 30
        while out.read_text().count("up") < 3:
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.02)
        workers = children(proc.pid)
        assert len(workers) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, out.read_text()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_replacement_that_dies_at_once_is_a_crash_loop(tmp_path: Path) -> None:
    proc, out = supervise(tmp_path, [sys.executable, "-c", "import sys; sys.exit(3)"], 2)
    assert proc.wait(timeout=30) == 1, out.read_text()
    assert "right after it was started again" in out.read_text()
