"""A redis-server of a test's own, without persistence, that the test can restart empty (as a Redis
that crashed without its data, or a failover to an empty replica, looks to the relay)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.conftest import unavailable


class RedisServer:
    def __init__(self, directory: Path, *options: str) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            unavailable("redis-server")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._cmd = [
            str(executable),
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)),
            *("--save", "", "--appendonly", "no"),
            *options,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    assert self._process.poll() is None, "redis-server exited"
                    assert time.monotonic() < deadline, "redis-server did not answer"
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def restart_empty(self) -> None:
        """Stopped and started again on the same port: with no persistence, every stream is gone."""
        self.stop()
        self.start()
