"""The open-loop generator counts queueing: latency runs from each request's intended send time."""

from __future__ import annotations

import asyncio

from bench import openloop

REQUEST = openloop.request_bytes("GET", "/", "127.0.0.1", {})


async def serve(delay: float, rate: float, duration: float) -> openloop.Result:
    """A server that answers one request at a time, each after ``delay`` seconds."""
    lock = asyncio.Lock()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                async with lock:
                    await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await openloop.run(f"http://127.0.0.1:{port}/", rate, duration, lambda i: REQUEST, connections=16)
    finally:
        server.close()
        await server.wait_closed()


def test_a_server_slower_than_the_rate_shows_the_queue_it_builds() -> None:
    # 100 requests due over 1 s; the server takes 20 ms each, one at a time: it needs 2 s, so the
    # last requests are answered about a second after they were due. A closed-loop tool would
    # report ~20 ms for every one of them.
    result = asyncio.run(serve(0.02, 100, 1.0))
    assert (result.sent, result.ok, result.errors) == (100, 100, 0)
    assert result.percentile_ms(99) > 700, result.summary()
    assert result.percentile_ms(50) > 200, result.summary()


def test_a_fast_server_is_measured_at_the_rate_asked() -> None:
    result = asyncio.run(serve(0.0, 100, 1.0))
    assert (result.sent, result.ok) == (100, 100)
    assert result.statuses == {204: 100}
    assert 80 <= result.achieved <= 110, result.summary()
    assert result.percentile_ms(50) < 100, result.summary()


def test_the_overload_bench_never_sends_a_key_twice_across_runs() -> None:
    # The overload bench drives several runs (warm-up, capacity steps, the 50 % reference, 2x) with
    # one request callable, and every run numbers its requests from 0: keys taken from that number
    # turned every run after the first into replays of orders already created.
    from bench import overload

    make = overload.requests("127.0.0.1:1", "token", pool=4)

    def key(raw: bytes) -> bytes:
        return raw.split(b"idempotency-key: ", 1)[1].split(b"\r\n", 1)[0]

    first = [key(make(i)) for i in range(10)]
    again = [key(make(i)) for i in range(10)]  # the next run, numbered from 0 again
    assert len(set(first + again)) == 20
