"""``orderfast serve-grpc --workers N``: N serve-grpc processes on one port, started, watched and
stopped by the main process, as Granian does for the HTTP workers.

Each worker is a process of its own (a fresh interpreter: grpcio's threads do not survive a fork)
that binds the port with ``SO_REUSEPORT``, so the kernel spreads new connections over them; each has
its own event loop, store pool and catalog snapshot, and runs its own health service. The main
process only supervises: SIGTERM or SIGINT is passed on to every worker (each drains as one
serve-grpc does) and waited for; a worker that dies is started again, unless its replacement dies
too within ``CRASH_WINDOW`` seconds of starting — a crash loop, which stops them all (exit 1).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("orderfast.rpc")
CRASH_WINDOW = 5.0  # seconds: a replacement dying this soon after it started is a crash loop
POLL = 0.2  # seconds between two looks at the workers (a signal wakes the supervisor at once)


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    started: float
    replacement: bool


class Supervisor:
    def __init__(self, argv: Sequence[str], count: int, env: Mapping[str, str], stop_timeout: float) -> None:
        self._argv = list(argv)
        self._count = count
        self._env = dict(env)
        self._stop_timeout = stop_timeout
        self._signal: signal.Signals | None = None
        self._wake = threading.Event()

    def _start(self, replacement: bool) -> _Worker:
        return _Worker(subprocess.Popen(self._argv, env=self._env), time.monotonic(), replacement)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signal = signal.Signals(signum)
        self._wake.set()

    def run(self) -> int:
        """Runs the workers until a signal (then the exit code: 0 when every worker stopped
        cleanly) or a crash loop (1)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        workers = [self._start(replacement=False) for _ in range(self._count)]
        log.info("gRPC: %d worker processes (pids %s)", len(workers), ", ".join(str(w.proc.pid) for w in workers))
        while self._signal is None:
            for i, worker in enumerate(workers):
                code = worker.proc.poll()
                if code is None:
                    continue
                if worker.replacement and time.monotonic() - worker.started < CRASH_WINDOW:
                    log.error(
                        "gRPC worker %d exited (%d) right after it was started again: stopping", worker.proc.pid, code
                    )
                    self._stop(workers, signal.SIGTERM)
                    return 1
                log.warning("gRPC worker %d exited (%d): starting another", worker.proc.pid, code)
                workers[i] = self._start(replacement=True)
            self._wake.wait(POLL)
        return 0 if self._stop(workers, self._signal) else 1

    def _stop(self, workers: list[_Worker], sig: signal.Signals) -> bool:
        """Passes ``sig`` on and waits for every worker; True when each exited with 0."""
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(sig)
        deadline = time.monotonic() + self._stop_timeout
        clean = True
        for worker in workers:
            try:
                code = worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("gRPC worker %d did not stop in time: killed", worker.proc.pid)
                worker.proc.kill()
                code = worker.proc.wait()
            # Killed by the very signal passed on: it was still starting (its handler not yet
            # installed), so it had nothing to drain.
            clean = clean and code in (0, -sig)
        return clean
