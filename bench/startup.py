"""How long `orderfast serve` takes from exec to its first `/readyz` 200, on both stores.

Each start is a fresh process on a migrated store (SQLite in a temporary data directory; PostgreSQL
in a fresh database seeded as ``bench/harness.py`` seeds it, 10 000 products; once more with
``sslmode=disable``), one worker; the
readiness probe is polled every 2 ms over a kept-alive socket-free HTTP GET. Also timed: ``import
orderfast.app`` alone, in a fresh interpreter. Medians of ``--runs``.

A warm machine has the package's bytecode: an installed wheel has it (pip compiles at install, as
the Docker image does), and Python writes it on a first import — unless ``PYTHONDONTWRITEBYTECODE``
is set, as it is on some CI machines, where every start would compile each of orderfast's modules
again (~40-60 ms here). So the package is compiled first, with ``compileall``.

    python bench/startup.py              # ~30 seconds
    python bench/startup.py rev=HEAD~3 default   # another revision's Python beside this one, alternating
    python bench/startup.py --respawns 5         # and how fast a killed worker is replaced (~1 minute more)
"""

from __future__ import annotations

import argparse
import compileall
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import harness, side_by_side  # noqa: E402


def start_once(env: dict[str, str]) -> float:
    port = harness.free_port()
    cmd = [str(harness.BIN / "orderfast"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    began = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = began + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                    return time.perf_counter() - began
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"orderfast did not become ready ({env.get('ORDERFAST_DATABASE_URL', 'sqlite')})")
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def respawns(env: dict[str, str], kills: int) -> list[float]:
    """Seconds from SIGKILL of the worker until its replacement answers ``/readyz`` 200. (Kills
    6 s apart: Granian stops on a crash loop, the same worker dying again within 5.5 s.)"""
    port = harness.free_port()
    cmd = [str(harness.BIN / "orderfast"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        deadline = time.perf_counter() + 30
        while not ready():
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError("orderfast did not become ready")
            time.sleep(0.01)
        seconds = []
        for _ in range(kills):
            time.sleep(6)
            (worker,) = psutil.Process(proc.pid).children()
            began = time.perf_counter()
            os.kill(worker.pid, signal.SIGKILL)
            while not ([c.pid for c in psutil.Process(proc.pid).children()] not in ([], [worker.pid]) and ready()):
                if time.perf_counter() > began + 30:
                    raise RuntimeError("the worker was not replaced")
                time.sleep(0.002)
            seconds.append(time.perf_counter() - began)
        return seconds
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def import_once(env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import orderfast.app"], env={**os.environ, **env}, check=True)
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--respawns", type=int, default=0, help="also kill the worker this many times (PostgreSQL)")
    ap.add_argument("configs", nargs="*", default=["default"], help="default, or rev=REV (its Python, this core)")
    args = ap.parse_args()
    base = {
        "ORDERFAST_JWT_SECRET": harness.SECRET,
        "ORDERFAST_LOG_LEVEL": "warning",
        "ORDERFAST_DRAIN_DELAY": "0",
    }
    results: dict[str, list[float]] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, dict[str, str]] = {}
        for config in args.configs:
            extra = side_by_side.worktree(stack, config.removeprefix("rev=")) if config.startswith("rev=") else {}
            compileall.compile_dir(Path(extra.get("PYTHONPATH", ROOT / "python")) / "orderfast", quiet=1)
            trees[config] = extra
        env = {**base, "ORDERFAST_DATA_DIR": tmp}
        subprocess.run([str(harness.BIN / "orderfast"), "migrate"], env={**os.environ, **env}, check=True)
        database = stack.enter_context(harness.prepared_database(f"orderfast_startup_{os.getpid()}"))
        pg = {**env, "ORDERFAST_DATABASE_URL": database[0]}
        # The same database with sslmode=disable: asyncpg's default (prefer) negotiates TLS on every
        # connection when the server offers it, as Debian's does, even over loopback.
        plain = {**pg, "ORDERFAST_DATABASE_URL": database[0] + ("&" if "?" in database[0] else "?") + "sslmode=disable"}
        for _ in range(args.runs):  # alternating: this machine drifts
            for config, extra in trees.items():
                results.setdefault(f"{config}: import orderfast.app", []).append(import_once(extra))
                results.setdefault(f"{config}: serve, SQLite", []).append(start_once({**env, **extra}))
                results.setdefault(f"{config}: serve, PostgreSQL", []).append(start_once({**pg, **extra}))
                results.setdefault(f"{config}: serve, PostgreSQL, no TLS", []).append(start_once({**plain, **extra}))
        if args.respawns:
            for config, extra in trees.items():
                results[f"{config}: killed worker replaced"] = respawns({**pg, **extra}, args.respawns)
    for name, seconds in sorted(results.items(), key=lambda kv: kv[0].split(": ")[1]):
        print(
            f"{name:40s} median {statistics.median(seconds):.3f} s  "
            f"(min {min(seconds):.3f}, max {max(seconds):.3f}, {len(seconds)} runs)"
        )


if __name__ == "__main__":
    main()
