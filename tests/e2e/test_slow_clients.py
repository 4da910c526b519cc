"""Slow and oversized requests over a raw socket: cut off by the server, never hanging it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Server, running
from tests.e2e.test_attacks import exchange


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory, {"ORDERFAST_BODY_TIMEOUT": "1"}, workers=1) as srv:
        yield srv


def raw(server: Server, head: bytes, body: bytes = b"") -> bytes:
    """Sends ``head`` and a partial ``body``, then just waits (bounded) for whatever the server answers."""
    return exchange(server, head + body, timeout=15)


def test_a_body_that_trickles_in_is_cut_off_with_408(impatient: Server) -> None:
    token = impatient.token("slow")
    head = (
        b"POST /v1/quotes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 100\r\n\r\n"
    )
    answer = raw(impatient, head, b'{"currency": ')  # 13 of the promised 100 bytes, then nothing
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request-timeout" in answer or b"content-length" in answer.lower()


def test_oversized_headers_are_refused(impatient: Server) -> None:
    head = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    answer = raw(impatient, head)
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=5) as s:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "the server still serves everyone else"
