"""Configuration files read again, without a restart, when they change: the feature flags, the
rate-limit policies and the tax table.

Every worker looks at each file's identity (modification time, size, inode: a Kubernetes
ConfigMap update swaps a symlink) every ``POLL`` seconds; when it changed, it reads the file and
applies it only if the whole of it is good. Applying is a few attribute writes on the event loop
between two requests, so no request is dropped or sees half a change. A bad file is refused with
one log line naming what is wrong, and what is in force is kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from orderfast.config import ConfigError
from orderfast.observability import instruments as m

log = logging.getLogger("orderfast.config")

POLL = 1.0  # seconds between looks at each file

T = TypeVar("T")
Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class LiveFile(Generic[T]):
    """One watched file: ``load`` reads and checks it (ConfigError when it cannot be used),
    ``apply`` puts it in force, ``shown`` says in a log line what is in force."""

    def __init__(
        self,
        name: str,
        path: Path,
        current: T,
        load: Callable[[Path], T],
        apply: Callable[[T], None],
        shown: Callable[[T], str] = str,
    ) -> None:
        """``current``: what is in force (read at start; a bad file there stops the start)."""
        self.name = name
        self.path = path
        self.current = current
        self._load = load
        self._apply = apply
        self._shown = shown
        self._seen = _stamp(path)
        for result in ("applied", "refused"):  # exported from the start, at 0
            m.CONFIG_RELOADS.labels(name, result)

    def check(self) -> bool:
        """Applies the file if it changed and is good; True when it was applied."""
        stamp = _stamp(self.path)
        if stamp == self._seen:
            return False
        self._seen = stamp
        try:
            new = self._load(self.path)
        except ConfigError as e:
            m.CONFIG_RELOADS.labels(self.name, "refused").inc()
            log.error("%s; kept in force: %s", e, self._shown(self.current))
            return False
        self._apply(new)
        self.current = new
        m.CONFIG_RELOADS.labels(self.name, "applied").inc()
        log.info("%s applied: %s", self.name, self._shown(new))
        return True


class LiveConfig:
    """The watched files of one worker (none when no file is configured: nothing runs)."""

    def __init__(self, files: Sequence[LiveFile[object]] = ()) -> None:
        self.files = list(files)

    def check(self) -> None:
        for file in self.files:
            file.check()

    async def watch_forever(self, interval: float = POLL) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:  # pragma: no cover - the watch must outlive anything
                log.exception("configuration files: the watch failed; retrying")
