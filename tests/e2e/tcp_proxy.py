"""A tiny loopback TCP proxy the tests can break on demand, between a process and a real server:

- ``cut()``: refuse new connections and sever the existing ones (the peer sees a reset or EOF at once);
- ``latency``: seconds added to each direction of every connection (a round trip costs twice it);
- ``blackhole()``: accept connections and read what is sent, but forward nothing either way and
  answer nothing — a partition or a frozen peer: the other side waits on a silent socket until its
  own timeouts fire. ``restore()`` lifts it; the connections that were blackholed are reset then (the
  bytes they lost can never be delivered, as when TCP gives up on a long partition), new ones forward.

``requests`` counts the chunks the clients sent (one per write a client makes and the peer answers
before the next: a round trip each, on loopback).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, latency: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.latency = latency
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._conns: list[socket.socket] = []
        self._holes: list[socket.socket] = []  # connections accepted or stalled while blackholed
        self._lock = threading.Lock()
        self._open = True
        self._blackholed = False
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._open:
                    client.close()
                    continue
                if self._blackholed:
                    self._holes.append(client)
                    threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                    continue
                try:
                    upstream = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                self._conns += [client, upstream]
            for a, b, outgoing in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, outgoing), daemon=True).start()

    @staticmethod
    def _swallow(src: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while src.recv(65536):
                pass

    def _pipe(self, src: socket.socket, dst: socket.socket, outgoing: bool) -> None:
        # A reader and a writer per direction, so that latency delays each chunk by the same amount
        # without serialising them (a pipelined stream stays pipelined).
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        writer = threading.Thread(target=self._write, args=(chunks, src, dst), daemon=True)
        writer.start()
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if outgoing:
                    with self._lock:
                        self.requests += 1
                chunks.put((time.monotonic() + self.latency, data))
        chunks.put((0.0, b""))

    def _write(self, chunks: queue.SimpleQueue[tuple[float, bytes]], src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                due, data = chunks.get()
                if not data:
                    break
                if self._blackholed:
                    # Never forwarded: this connection is now part of the partition.
                    with self._lock:
                        if src not in self._holes:
                            self._holes += [src, dst]
                    continue
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Refuse new connections and sever the existing ones, as a network partition would."""
        with self._lock:
            self._open = False
            self._close_all()

    def _close_all(self) -> None:
        for s in self._conns + self._holes:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._conns.clear()
        self._holes.clear()

    def blackhole(self) -> None:
        """From now on nothing is forwarded, on new connections or existing ones; nothing is refused."""
        with self._lock:
            self._blackholed = True

    def restore(self) -> None:
        """Forward again (after ``cut`` or ``blackhole``); connections a blackhole swallowed are reset."""
        with self._lock:
            if self._blackholed:
                self._blackholed = False
                for s in self._holes:
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
                    s.close()
                self._holes.clear()
            self._open = True

    def close(self) -> None:
        self.cut()
        self._listener.close()
