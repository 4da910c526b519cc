"""Connections an attacker holds open, over real sockets against a real Granian process.

Silent sockets used to lock every new client out: the server waited, with no timeout, for the
bytes that tell HTTP/1 from cleartext HTTP/2, and each worker served at most backlog/workers
connections. Now only HTTP/1.1 is served, a head must arrive within the header timeout counted from
accept, and a worker holds thousands of connections.
"""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, running
from tests.e2e.test_orders import new_sku

HEADER_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"ORDERFAST_HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    with running(tmp_path_factory, env, workers=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"ORDERFAST_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "ORDERFAST_MAX_CONNECTIONS": "32"}
    with running(tmp_path_factory, env, workers=1) as srv:
        yield srv


@pytest.fixture(scope="module", autouse=True)
def enough_file_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4000 <= hard or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_silent(server: Server, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        socks.append(s)
    return socks


def livez(server: Server, timeout: float) -> bytes:
    """One request on a fresh connection; raises on a timeout."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return s.recv(4096)


def wait_closed(socks: list[socket.socket], deadline: float) -> int:
    """How many of ``socks`` the server closed (EOF or reset) before ``deadline``."""
    open_ = {s.fileno(): s for s in socks}
    poll = select.poll()
    for fd in open_:
        poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    closed = 0
    while open_ and time.monotonic() < deadline:
        for fd, _ in poll.poll(200):
            try:
                data = open_[fd].recv(1)
            except OSError:
                data = b""
            if not data:
                closed += 1
                poll.unregister(fd)
                del open_[fd]
    return closed


def test_thousands_of_silent_sockets_lock_nobody_out_and_are_closed(guarded: Server) -> None:
    silent = open_silent(guarded, 3000)
    try:
        # A normal client is served at once, many times over, while they are held.
        for _ in range(20):
            assert livez(guarded, timeout=1.5).startswith(b"HTTP/1.1 200"), "a new client was locked out"
        # ... and the server cuts every silent one after the header timeout (from accept).
        closed = wait_closed(silent, time.monotonic() + HEADER_TIMEOUT + 10)
        assert closed == len(silent), f"{len(silent) - closed} silent sockets still open"
    finally:
        for s in silent:
            s.close()


def test_past_the_connection_limit_new_clients_wait_only_for_the_queue_ahead(small: Server) -> None:
    """Past the worker's 32 connections, new ones wait in the kernel's queue, and each queued silent
    socket holds a slot for one header timeout at most: a client behind k of them is served within
    ceil(k / 32) header timeouts — never locked out for as long as they are held."""
    silent = open_silent(small, 100)
    try:
        rounds = -(-len(silent) // 32)
        started = time.monotonic()
        answer = livez(small, timeout=rounds * HEADER_TIMEOUT + 6)
        assert answer.startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < rounds * HEADER_TIMEOUT + 6
    finally:
        for s in silent:
            s.close()


def test_a_kept_alive_connection_idle_past_the_header_timeout_is_closed(guarded: Server) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=HEADER_TIMEOUT + 10) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        assert wait_closed([s], time.monotonic() + HEADER_TIMEOUT + 10) == 1


def test_cleartext_http2_is_not_served(guarded: Server) -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")  # + empty SETTINGS
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as s:
        s.sendall(preface)
        try:
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
    # An HTTP/2 server answers with its own SETTINGS frame (type 0x4 at byte 3).
    assert not (len(answer) >= 9 and answer[3] == 0x4), answer[:40]
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4") or answer.startswith(b"HTTP/1.1 5"), answer[:100]
    # An HTTP/1.1 upgrade request is answered as HTTP/1.1, never switched.
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as s:
        s.sendall(
            b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        assert s.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("head", "refused"),
    [
        (b"X-Pad: " + b"a" * 60_000 + b"\r\n", False),
        (b"X-Pad: " + b"a" * (64 * 1024) + b"\r\n", True),  # past orderfast's own 64 KiB
        (b"X-Pad: " + b"a" * 15_000_000 + b"\r\n", True),  # past Granian's read buffer
        (b"".join(b"X-%d: a\r\n" % i for i in range(98)), False),
        (b"".join(b"X-%d: a\r\n" % i for i in range(20_000)), True),  # past 100 fields
    ],
)
def test_head_limits(guarded: Server, head: bytes, refused: bool) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
        # The server may stop reading (refusing) before the head even ends.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n")
        try:
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
    if refused:
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    else:
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    assert livez(guarded, timeout=5).startswith(b"HTTP/1.1 200")


def test_a_uri_past_64_kib_is_414(guarded: Server) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
        s.sendall(b"GET /livez?pad=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 414")


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def test_one_connection_carries_request_after_request_however_their_bodies_arrive(guarded: Server) -> None:
    """A body of known length is read only up to that length (no wait for the server's end-of-body
    message): the connection stays usable for the next request, whether the body came with its
    head, after it, or was empty."""
    sku = new_sku(guarded)
    body = b'{"currency":"USD","items":[{"sku":"' + sku.encode() + b'","quantity":2}]}'
    head = (
        b"POST /v1/quotes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + guarded.token("conn-1").encode() + b"\r\nContent-Length: %d\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
        for split in (False, True, False):
            if split:  # the head first, the body in a later segment
                s.sendall(head % len(body))
                time.sleep(0.05)
                s.sendall(body)
            else:
                s.sendall(head % len(body) + body)
            status, answer = read_response(s)
            assert status == 200, answer
            assert b'"total":"20.00"' in answer
        s.sendall(head % 0)  # a declared empty body: refused, and the connection still serves
        status, answer = read_response(s)
        assert status == 400, answer
        s.sendall(head % len(body) + body)
        assert read_response(s)[0] == 200
