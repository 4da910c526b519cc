"""Several orderfast instances on one machine: each `orderfast serve` process on its own port, and a
real HAProxy in front of them (the rolling-update and multi-instance tests share these)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import unavailable
from tests.e2e.conftest import STARTUP_TIMEOUT, free_port

DRAIN_DELAY = 2.0
CHECK_INTER_MS = 100  # HAProxy's health-check period: far inside the drain delay


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if found is None:
        unavailable("haproxy (apt-get install haproxy)")
    assert found is not None
    return found


class Instance:
    """One `orderfast serve` process (one worker) on its own port."""

    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orderfast", "serve", "--port", str(port), "--workers", "1"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = log

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def terminate(self) -> int:
        """SIGTERM, as a rollout sends it; the exit code once drained."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=DRAIN_DELAY + 30)


class Balancer:
    """HAProxy with a backend of fixed slots; a slot is UP while its instance answers /readyz 200."""

    def __init__(self, workdir: Path, slots: list[int]) -> None:
        self.port = free_port()
        self.admin = workdir / "haproxy.sock"
        config = workdir / "haproxy.cfg"
        servers = "\n".join(
            f"    server s{i} 127.0.0.1:{port} check inter {CHECK_INTER_MS} fall 1 rise 2"
            for i, port in enumerate(slots)
        )
        config.write_text(
            f"""global
    stats socket {self.admin} mode 600 level admin
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # No retries: a request the balancer sends to an instance that is going away fails, as it
    # would behind a balancer that does not retry (a Kubernetes Service) — the drain must prevent it.
    retries 0
frontend api
    bind 127.0.0.1:{self.port}
    default_backend orderfast
backend orderfast
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""
        )
        with (workdir / "haproxy.log").open("wb") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [haproxy_binary(), "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=log
            )

    def _ask(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.admin))
            s.sendall(command.encode() + b"\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.decode()

    def served(self) -> dict[str, int]:
        """Requests each server slot was sent (the `stot` column of `show stat`)."""
        rows = [line.split(",") for line in self._ask("show stat").splitlines() if line.startswith("orderfast,")]
        return {row[1]: int(row[7]) for row in rows if row[1].startswith("s")}

    def states(self) -> dict[str, str]:
        states = {}
        for line in self._ask("show servers state orderfast").splitlines():
            parts = line.split()
            if len(parts) > 6 and parts[0].isdigit():
                states[parts[3]] = "UP" if parts[5] == "2" else "DOWN"  # srv_op_state 2: running
        return states

    def wait(self, server: str, state: str) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.states().get(server) == state:
                    return
            except OSError:
                pass  # the admin socket is not there yet
            assert time.monotonic() < deadline, f"{server} never {state}: {self.states()}"
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
