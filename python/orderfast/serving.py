"""The process model of ``orderfast serve``: Granian's main process, its workers, and how they stop.

A graceful stop, on SIGTERM (what Kubernetes and most supervisors send):

1. the main process tells every worker to drain (SIGUSR1): from then on ``/readyz`` answers 503,
   so a load balancer stops sending, and every response says ``Connection: close``, so clients
   leave their kept-alive connections — while requests are still served as usual;
2. after ``ORDERFAST_DRAIN_DELAY`` seconds it stops the workers as Granian does: each closes its
   listener, lets every request it accepted finish (a create-order waiting for its group-commit
   batch included) and closes its idle connections, then runs the app's shutdown (pool, publisher);
3. a worker still busy ``ORDERFAST_SHUTDOWN_TIMEOUT`` seconds later is killed.

SIGINT (Ctrl-C at a terminal, which also reaches the workers directly) skips the delay. A second
signal during the delay stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Any

from granian.server.mp import MPServer
from starlette.applications import Starlette

from orderfast.app import create_app
from orderfast.config import Settings
from orderfast.http.health import DRAIN_SIGNAL

log = logging.getLogger("orderfast.serve")


def worker_app(settings: Settings) -> Starlette:
    """Each worker's app. Until the app's lifespan listens for the drain signal, the signal is
    ignored (its default would kill the worker); a worker that is not started is not ready anyway."""
    signal.signal(DRAIN_SIGNAL, signal.SIG_IGN)
    return create_app(settings)


class DrainingServer(MPServer):
    """Granian's multi-process server, with a drain between SIGTERM and the workers' stop."""

    drain_delay = 0.0

    def __init__(self, *args: Any, drain_delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drain_delay = drain_delay
        self._draining = False

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        signum = args[0] if args else None
        if self._draining or signum != signal.SIGTERM or self.drain_delay <= 0:
            super().signal_handler_interrupt(*args, **kwargs)  # type: ignore[no-untyped-call]
            return
        self._draining = True
        for worker in self.wrks:
            pid = worker.inner.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, DRAIN_SIGNAL)
        log.info("SIGTERM: draining for %.1f s (readiness 503), then stopping the workers", self.drain_delay)
        stop = threading.Timer(self.drain_delay, super().signal_handler_interrupt)
        stop.daemon = True
        stop.start()
