"""The featureless floor: the least a durable create-order needs in Python, to measure what
orderfast's features cost against.

Raw ASGI on Granian, asyncpg, and group commit in its plainest form: the request bodies that
arrive while a batch is being written go together in the next one, one multi-row INSERT (one
round trip, one commit, ``synchronous_commit`` as the server has it); each request is answered 201
with its new id once its batch has committed. No authentication, no validation, no pricing, no
idempotency, no stock, no events, no metrics: the body is stored as it came.

    PEER_DATABASE_URL=postgresql://... granian --interface asgi --loop uvloop bench.peers.batcher:app
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncpg

MAX_BATCH = 64  # as orderfast's default (ORDERFAST_GROUP_COMMIT_MAX)
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS floor_orders "
    "(id uuid PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)
INSERT = "INSERT INTO floor_orders (id, body) SELECT * FROM unnest($1::uuid[], $2::text[])"
HEADERS = [(b"content-type", b"application/json")]


class Batcher:
    """One connection, one batch in flight (as orderfast's default, ORDERFAST_GROUP_COMMIT_INFLIGHT=1)."""

    def __init__(self) -> None:
        self.conn: asyncpg.Connection | None = None
        self.pending: list[tuple[uuid.UUID, str, asyncio.Future[None]]] = []
        self.writing = False

    async def open(self) -> None:
        self.conn = await asyncpg.connect(os.environ["PEER_DATABASE_URL"])
        await self.conn.execute(SCHEMA)

    async def create(self, body: str) -> uuid.UUID:
        order_id = uuid.uuid4()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((order_id, body, done))
        if not self.writing:
            self.writing = True
            asyncio.get_running_loop().create_task(self._write())
        await done
        return order_id

    async def _write(self) -> None:
        assert self.conn is not None
        try:
            while self.pending:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
                try:
                    await self.conn.execute(INSERT, [b[0] for b in batch], [b[1] for b in batch])
                except Exception as e:  # every request of the batch fails alike
                    for _, _, done in batch:
                        done.set_exception(e)
                else:
                    for _, _, done in batch:
                        done.set_result(None)
        finally:
            self.writing = False


BATCHER = Batcher()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await BATCHER.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if BATCHER.conn is not None:
                    await BATCHER.conn.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if scope["method"] != "POST" or scope["path"] != "/v1/orders":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    order_id = await BATCHER.create(body.decode())
    await send({"type": "http.response.start", "status": 201, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b'{"id":"%s"}' % str(order_id).encode()})
