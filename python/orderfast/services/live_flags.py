"""The feature flags in force in this worker, and the watch that applies a changed flags file.

Every worker looks at the file's identity (modification time, size, inode: a Kubernetes ConfigMap
update swaps a symlink) every ``POLL`` seconds; when it changed, it reads the file, and applies the
new flags only if the whole file is good. Applying is a few attribute writes on the event loop
between two requests, so no request is dropped or sees half a change.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from orderfast.config import ConfigError, Flags, load_flags
from orderfast.observability import instruments as m

log = logging.getLogger("orderfast.flags")

POLL = 1.0  # seconds between looks at the flags file

Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class LiveFlags:
    def __init__(self, path: Path | None, apply: Callable[[Flags], None]) -> None:
        """Reads and applies the file at once (ConfigError if it is bad: a start must not guess)."""
        self.path = path
        self._apply = apply
        self._seen = _stamp(path) if path is not None else None
        self.current = load_flags(path) if path is not None else Flags()
        apply(self.current)
        for result in ("applied", "refused"):  # exported from the start, at 0
            m.FLAG_RELOADS.labels(result)

    def check(self) -> bool:
        """Applies the file if it changed and is good; True when new flags were applied."""
        if self.path is None:
            return False
        stamp = _stamp(self.path)
        if stamp == self._seen:
            return False
        self._seen = stamp
        try:
            flags = load_flags(self.path)
        except ConfigError as e:
            m.FLAG_RELOADS.labels("refused").inc()
            log.error("%s; the flags in force are kept: %s", e, self.current.shown())
            return False
        self._apply(flags)
        self.current = flags
        m.FLAG_RELOADS.labels("applied").inc()
        log.info("feature flags applied: %s", flags.shown())
        return True

    async def watch_forever(self, interval: float = POLL) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:  # pragma: no cover - the watch must outlive anything
                log.exception("feature flags: the watch failed; retrying")
