"""Versioned SQL migrations, one folder per dialect: ``NNNN_name.sql``, applied in order once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

from orderfast.store.base import SchemaOutOfDate

log = logging.getLogger("orderfast.store")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load(dialect: str) -> list[Migration]:
    folder = resources.files(__package__).joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations must be numbered 1..n without gaps")
    return found


def latest(dialect: str) -> int:
    return len(load(dialect))


def check_version(database: str, version: int, expected: int) -> None:
    """Whether this code may serve a schema at ``version``: not an older one (run `migrate`); a newer
    one, yes — during a rollout or after a rollback the previous release runs on the next release's
    schema, which only ever adds what the previous one does not use (expand, then contract)."""
    if version < expected:
        raise SchemaOutOfDate(
            f"{database} schema at version {version}, code expects {expected}: run `orderfast migrate`"
        )
    if version > expected:
        log.warning(
            "%s schema at version %d is newer than this release's %d: serving it (a newer release's "
            "migrations only add what this one does not use)",
            database,
            version,
            expected,
        )
