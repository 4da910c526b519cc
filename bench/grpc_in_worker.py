"""An experiment for bench/grpc_vs_rest.py, not a way to run orderfast: the gRPC service served from
inside a Granian worker, on the worker's own event loop, beside the HTTP app — the alternative to
``orderfast serve-grpc``'s process of its own. grpc is imported in the worker (after Granian's fork).

    granian --interface asgi --factory bench.grpc_in_worker:app --workers 1 --port P
    (ORDERFAST_* as for orderfast serve; BENCH_GRPC_PORT: the gRPC port)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from orderfast import bootstrap
from orderfast.app import create_app
from orderfast.config import Settings


def app() -> Any:
    settings = Settings.from_env()
    http = create_app(settings)
    outer = http.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[None]:
        import grpc

        from orderfast.rpc.server import OrdersService
        from orderfast.rpc.v1 import orders_pb2_grpc

        async with outer(application):
            parts = bootstrap.build(settings)  # the gRPC side's own parts, in this worker
            await parts.store.open()
            await parts.catalog.refresh()
            server = grpc.aio.server()
            orders_pb2_grpc.add_OrdersServicer_to_server(OrdersService(parts), server)
            server.add_insecure_port(f"127.0.0.1:{os.environ['BENCH_GRPC_PORT']}")
            await server.start()
            try:
                yield
            finally:
                await server.stop(1)
                await parts.store.close()

    http.router.lifespan_context = lifespan
    return http
