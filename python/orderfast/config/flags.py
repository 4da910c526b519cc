"""Feature flags: a small TOML file (``ORDERFAST_FLAGS_FILE``) read at start — a bad one stops the
server, as a bad setting does — and read again by every worker whenever it changes, without a
restart; a bad new one is refused with one log line and the flags in force are kept.

    coupons = false                # refuse every order and quote that names a coupon (422)
    ratelimit_fail_closed = true   # with Redis limits: 503 while Redis is unreachable

A flag the file leaves out has its default; an unknown name or a value that is not a boolean is an
error (a typo must not pass as "off").
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from orderfast.config.values import ConfigError, read_toml

DOCS = {
    "coupons": "orders and quotes may name a coupon (false: refused with 422 `coupons_disabled`)",
    "ratelimit_fail_closed": "with shared limits on Redis, refuse requests (503) while Redis is unreachable "
    "instead of falling back to per-worker limits; unset: ORDERFAST_RATELIMIT_ON_REDIS_FAILURE decides",
}


@dataclass(frozen=True, slots=True)
class Flags:
    coupons: bool = True
    ratelimit_fail_closed: bool | None = None  # None: the environment's setting decides

    def shown(self) -> dict[str, str]:
        return {f.name: _show(getattr(self, f.name)) for f in fields(self)}


def _show(value: bool | None) -> str:
    return "unset" if value is None else str(value).lower()


NAMES = tuple(f.name for f in fields(Flags))


def load_flags(path: Path) -> Flags:
    """The flags in ``path``; ConfigError, saying what is wrong, when they cannot be used."""
    raw = read_toml(path, f"feature flags {path}")
    unknown = sorted(set(raw) - set(NAMES))
    if unknown:
        raise ConfigError(f"feature flags {path}: unknown {', '.join(unknown)} (known: {', '.join(NAMES)})")
    for name, value in raw.items():
        if not isinstance(value, bool):
            raise ConfigError(f"feature flags {path}: {name} must be true or false, not {value!r}")
    return Flags(**raw)
