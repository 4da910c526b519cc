"""Rate-limit quotas and the finer policies of ``ORDERFAST_RATELIMIT_FILE``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from orderfast.config.values import ConfigError, integer, read_toml


@dataclass(frozen=True, slots=True)
class RateQuota:
    """``quota`` requests per ``period`` seconds, bursts of up to ``burst``."""

    quota: int
    period: float
    burst: int

    @classmethod
    def parse(cls, text: str, burst: str | None, name: str) -> RateQuota:
        quota_text, sep, period_text = text.partition("/")
        try:
            quota = int(quota_text)
            period = float(period_text) if sep else 1.0
        except ValueError:
            raise ConfigError(f"{name} must look like <quota>/<seconds>, e.g. 100/1") from None
        if quota < 1 or not period > 0:
            raise ConfigError(f"{name} needs a quota of at least 1 and a positive period")
        burst_value = 2 * quota if burst is None else integer(1)(burst, f"{name}_BURST")
        return cls(quota, period, burst_value)


POLICY_KEYS = ("user", "ip")
_POLICY_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_ROUTE = re.compile(r"(\*|GET|POST|PUT|PATCH|DELETE) (/v1(?:/(?:\*|[A-Za-z0-9._~-]+))+)")


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """A named limit on top of the defaults, for the routes it names, keyed by ``key``.

    ``routes`` are ``"METHOD /v1/path"`` patterns; ``*`` stands for any one path segment (or,
    as the method, for any method)."""

    name: str
    key: str  # "user" | "ip"
    quota: RateQuota
    routes: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """``ORDERFAST_RATELIMIT_FILE``: where the policies came from (read again on a change) and what it held."""

    path: Path
    policies: tuple[RatePolicy, ...]

    def __str__(self) -> str:
        return f"{self.path} ({', '.join(p.name for p in self.policies) or 'no policies'})"


def load_rate_policies(path: Path) -> tuple[RatePolicy, ...]:
    """Read the finer policies from a TOML file (``ORDERFAST_RATELIMIT_FILE``)::

    [policies.checkout]
    limit = "10/1"        # <quota>/<seconds>
    burst = 10            # optional; 2 x quota by default, as for the defaults
    key = "user"          # "user" (the principal) or "ip" (the client address)
    routes = ["POST /v1/orders", "POST /v1/quotes"]
    """
    where = f"ORDERFAST_RATELIMIT_FILE ({path})"
    doc = read_toml(path, where)
    unknown = set(doc) - {"policies"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level keys {sorted(unknown)}; only [policies.<name>] tables")
    tables = doc.get("policies", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}: policies must be tables, [policies.<name>]")
    policies = []
    for name, table in tables.items():
        what = f"{where}: policy {name!r}"
        if not _POLICY_NAME.fullmatch(name) or name in POLICY_KEYS:
            raise ConfigError(f"{what}: names are 1-32 of a-z, 0-9, _ and -, and not user or ip (the defaults)")
        if not isinstance(table, dict):
            raise ConfigError(f"{what}: must be a table")
        extra = set(table) - {"limit", "burst", "key", "routes"}
        if extra:
            raise ConfigError(f"{what}: unknown keys {sorted(extra)}")
        limit, burst, key, routes = table.get("limit"), table.get("burst"), table.get("key"), table.get("routes")
        if not isinstance(limit, str):
            raise ConfigError(f'{what}: limit must be a string such as "10/1"')
        if burst is not None and (not isinstance(burst, int) or isinstance(burst, bool)):
            raise ConfigError(f"{what}: burst must be an integer")
        if key not in POLICY_KEYS:
            raise ConfigError(f'{what}: key must be "user" or "ip"')
        if not isinstance(routes, list) or not routes or not all(isinstance(r, str) for r in routes):
            raise ConfigError(f'{what}: routes must be a non-empty list such as ["POST /v1/orders"]')
        parsed = []
        for route in routes:
            match = _ROUTE.fullmatch(route.strip())
            if match is None:
                raise ConfigError(f'{what}: route {route!r} must look like "POST /v1/orders" or "GET /v1/orders/*"')
            parsed.append((match[1], match[2]))
        quota = RateQuota.parse(limit, None if burst is None else str(burst), f"{what}: limit")
        policies.append(RatePolicy(name, str(key), quota, tuple(parsed)))
    return tuple(policies)
