"""Kubernetes-style probes: liveness, readiness (the database answers), startup (warmed up)."""

from __future__ import annotations

import asyncio
import signal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orderfast.store.base import Store

# What the main process of `orderfast serve` sends each worker when it starts draining.
DRAIN_SIGNAL = signal.SIGUSR1


class Health:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.started = False
        # Set when the server drains before stopping (orderfast/serving.py): not ready any more,
        # and every response asks the client to close its connection.
        self.draining = False

    def drain(self) -> None:
        self.draining = True

    def routes(self) -> list[Route]:
        return [
            Route("/livez", self.livez, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/startupz", self.startupz, methods=["GET"]),
        ]

    async def livez(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        if self.draining:
            return JSONResponse({"status": "draining", "store": self._store.kind}, status_code=503)
        try:
            ok = self.started and await asyncio.wait_for(self._store.ping(), timeout=2.0)
        except TimeoutError:
            ok = False
        if ok:
            return JSONResponse({"status": "ok", "store": self._store.kind})
        return JSONResponse({"status": "unavailable", "store": self._store.kind}, status_code=503)

    async def startupz(self, request: Request) -> Response:
        if self.started:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "starting"}, status_code=503)
