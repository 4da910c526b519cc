"""Private, throwaway PostgreSQL clusters for the operations drills.

Each cluster is its own ``initdb`` (or a copy of a base backup) in a temporary directory, on a free
loopback port, with its Unix socket in that directory: nothing of the machine's PostgreSQL is read or
touched. PostgreSQL refuses to run as root, so when the tests run as root every PostgreSQL binary, and
every copy into a data directory, runs as the ``postgres`` OS user (``runuser -u postgres --``), and the
working directory belongs to that user. Run as anyone else, they run as that user."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")
NEEDED = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_verifybackup", "pg_dump", "pg_restore")
# The binaries: ORDERFAST_TEST_PG_BINDIR, else the directory of an `initdb` on PATH, else the newest
# /usr/lib/postgresql/<version>/bin (Debian and Ubuntu keep them there, off PATH).
BINDIR_ENV = "ORDERFAST_TEST_PG_BINDIR"
# The OS user that runs them when the tests run as root.
OS_USER = os.environ.get("ORDERFAST_TEST_PG_OS_USER", "postgres")


class Unavailable(Exception):
    """Something the drill needs is not on this machine (skipped locally, a failure in CI)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.02) -> T:
    """Polls ``check`` until it returns something truthy; a deadline, never a guessed wait."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name))


def find_bindir() -> Path:
    configured = os.environ.get(BINDIR_ENV)
    if configured:
        candidates = [Path(configured)]
    else:
        on_path = shutil.which("initdb")
        candidates = [Path(on_path).parent] if on_path else []
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in NEEDED):
            return bindir
    where = configured or "PATH and /usr/lib/postgresql/*/bin"
    raise Unavailable(
        f"PostgreSQL server binaries ({', '.join(NEEDED)}) not found in {where}; install the postgresql "
        f"package or set {BINDIR_ENV}"
    )


@dataclass(frozen=True)
class Tools:
    """The PostgreSQL binaries and the OS user that runs them, working in ``home``."""

    bindir: Path
    user: pwd.struct_passwd | None  # None: the tests' own user
    home: Path

    @classmethod
    @contextlib.contextmanager
    def workspace(cls) -> Iterator[Tools]:
        """A temporary directory owned by the user that runs PostgreSQL, removed afterwards."""
        bindir = find_bindir()
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(OS_USER)
            except KeyError:
                raise Unavailable(
                    f"running as root, and PostgreSQL refuses root: no OS user {OS_USER!r} to run it as "
                    "(set ORDERFAST_TEST_PG_OS_USER)"
                ) from None
        home = Path(tempfile.mkdtemp(prefix="orderfast-drill-"))
        try:
            tools = cls(bindir, user, home)
            tools.own(home)
            yield tools
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def as_user(self, argv: Sequence[str]) -> list[str]:
        if self.user is None:
            return list(argv)
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", self.user.pw_name, "--", *argv]
        return ["su", self.user.pw_name, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def pg(self, program: str, *args: str | Path) -> list[str]:
        return self.as_user([str(self.bindir / program), *map(str, args)])

    def env(self) -> dict[str, str]:
        """The environment without libpq's PG* variables: every connection detail is explicit."""
        return {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def run(self, argv: Sequence[str], *, timeout: float = 60) -> str:
        done = subprocess.run(
            argv, cwd=self.home, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    def own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def mkdir(self, path: Path) -> Path:
        path.mkdir(mode=0o700)
        self.own(path)
        return path

    def write(self, path: Path, text: str) -> None:
        path.write_text(text)
        self.own(path)


def _conf_value(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


@dataclass
class Cluster:
    """One PostgreSQL cluster: a data directory of ours, started with ``pg_ctl`` on a free port."""

    tools: Tools
    name: str
    port: int = 0
    running: bool = False

    @property
    def datadir(self) -> Path:
        return self.tools.home / self.name

    @property
    def log(self) -> Path:
        return self.tools.home / f"{self.name}.log"

    @classmethod
    def init(cls, tools: Tools, name: str) -> Cluster:
        cluster = cls(tools, name)
        tools.run(
            tools.pg(
                "initdb",
                "-D",
                cluster.datadir,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        )
        cluster.configure(listen_addresses="127.0.0.1", unix_socket_directories=str(tools.home))
        return cluster

    @classmethod
    def copy_of(cls, tools: Tools, backup: Path, name: str) -> Cluster:
        """A new data directory, a copy of a plain-format base backup (``cp -a`` as the cluster's user)."""
        cluster = cls(tools, name)
        tools.run(tools.as_user(["cp", "-a", str(backup), str(cluster.datadir)]))
        return cluster

    def client_args(self) -> list[str]:
        """libpq client options (pg_basebackup, pg_dump, pg_restore): this cluster, as its superuser."""
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def configure(self, **settings: str | int) -> None:
        """Appends to postgresql.conf (a later line wins over an earlier one, and over the backup's)."""
        lines = "".join(f"{name} = {_conf_value(value)}\n" for name, value in settings.items())
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(lines)

    def start(self, *, timeout: float = 60, same_port: bool = False) -> None:
        """``pg_ctl start -w`` on a free port (another one if the port was taken in between);
        ``same_port``: on the port it had (a restart its clients must find again)."""
        for attempt in range(3):
            if not (same_port and attempt == 0 and self.port):
                self.port = free_port()
            self.configure(port=self.port)
            seen = self.log.stat().st_size if self.log.exists() else 0
            done = subprocess.run(
                self.tools.pg("pg_ctl", "-D", self.datadir, "-l", self.log, "-w", "-t", str(int(timeout)), "start"),
                cwd=self.tools.home,
                env=self.tools.env(),
                capture_output=True,
                text=True,
                timeout=timeout + 10,
                check=False,
            )
            if done.returncode == 0:
                self.running = True
                return
            self.running = self._postmaster_pid() is not None
            if self.running:  # started, but not ready in time
                self.stop("immediate")
            news = self.log.read_text(errors="replace")[seen:] if self.log.exists() else ""
            if "Address already in use" not in news or attempt == 2:
                raise RuntimeError(f"{self.name} did not start ({done.stdout}{done.stderr}):\n{news[-4000:]}")

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop``; ``immediate`` is a crash (no shutdown checkpoint, nothing more archived).
        Should pg_ctl fail, the postmaster of this data directory (and only it) is killed."""
        if not self.running:
            return
        self.running = False
        done = subprocess.run(
            self.tools.pg("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "30", "stop"),
            cwd=self.tools.home,
            env=self.tools.env(),
            capture_output=True,
            timeout=40,
            check=False,
        )
        pid = self._postmaster_pid()
        if done.returncode != 0 and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def query(self, sql: str, *args: Any, database: str = "postgres") -> list[asyncpg.Record]:
        return query(self.dsn(database), sql, *args)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def wait_promoted(cluster: Cluster, *, timeout: float = 60) -> None:
    """Until the cluster accepts connections and has left recovery (promoted to a new timeline)."""

    def promoted() -> bool:
        if cluster._postmaster_pid() is None:
            raise RuntimeError(f"{cluster.name} stopped during recovery:\n{cluster.log_tail()}")
        try:
            return not cluster.query("SELECT pg_is_in_recovery()")[0][0]
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False

    try:
        wait_until(promoted, timeout=timeout, what=f"{cluster.name} promoted")
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n{cluster.log_tail()}") from None
