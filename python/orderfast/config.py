"""Settings, read once from ``ORDERFAST_*`` environment variables.

Secrets are held in :class:`Secret` so that no repr, log line or settings dump shows them.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "ORDERFAST_"
# Settings that may hold a secret: each can also be read from a file named by <NAME>_FILE.
SECRET_SETTINGS = frozenset({"DATABASE_URL", "JWT_SECRET", "WEBHOOK_SECRET", "REDIS_URL"})


class ConfigError(ValueError):
    """A setting is present but unusable; the message names it."""


class Secret:
    """A string that never shows itself in repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


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
        burst_value = 2 * quota if burst is None else _int(burst, f"{name}_BURST", minimum=1)
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


def load_rate_policies(path: Path) -> tuple[RatePolicy, ...]:
    """Read the finer policies from a TOML file (``ORDERFAST_RATELIMIT_FILE``)::

    [policies.checkout]
    limit = "10/1"        # <quota>/<seconds>
    burst = 10            # optional; 2 x quota by default, as for the defaults
    key = "user"          # "user" (the principal) or "ip" (the client address)
    routes = ["POST /v1/orders", "POST /v1/quotes"]
    """
    where = f"ORDERFAST_RATELIMIT_FILE ({path})"
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
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


def _int(text: str, name: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def _float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _networks(text: str | None) -> tuple[Any, ...]:
    import ipaddress

    try:
        return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in (text or "").split(",") if p.strip())
    except ValueError:
        raise ConfigError("ORDERFAST_TRUSTED_PROXIES must be a comma-separated list of addresses or CIDRs") from None


def _failure_mode(text: str | None) -> bool:
    if text is None or text.strip().lower() == "open":
        return True
    if text.strip().lower() == "closed":
        return False
    raise ConfigError("ORDERFAST_RATELIMIT_ON_REDIS_FAILURE must be open or closed")


def _nonneg(text: str | None, name: str, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _bool(text: str | None, name: str) -> bool:
    if text is None:
        return False
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false")


def _tax_rates(text: str | None) -> dict[str, str]:
    """``standard=20,reduced=5.5`` → {"standard": "20", "reduced": "5.5"} (percentages, exact)."""
    from orderfast import _core

    rates: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, rate = part.partition("=")
        name, rate = name.strip(), rate.strip()
        try:
            ok = bool(sep and name) and 0 <= _core.parse_percent(rate) <= 1_000_000_000
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError("ORDERFAST_TAX_RATES must look like standard=20,reduced=5.5")
        rates[name] = rate
    return rates


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything orderfast can be told. Build with :meth:`from_env`."""

    database_url: Secret | None = None
    data_dir: Path = Path(".orderfast")
    jwt_secret: Secret | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    ratelimit_user: RateQuota = field(default_factory=lambda: RateQuota(100, 1.0, 200))
    ratelimit_ip: RateQuota = field(default_factory=lambda: RateQuota(1000, 1.0, 2000))
    max_body_bytes: int = 64 * 1024
    body_timeout: float = 10.0  # seconds to receive a whole request body
    # Seconds a connection may take to send a request head: from accept, and from the previous
    # response on a kept-alive connection (so also the keep-alive idle timeout).
    header_timeout: float = 10.0
    max_connections: int = 4096  # open connections per worker; past it, new ones wait in the backlog
    catalog_refresh: float = 0.5
    db_pool_min: int = 2
    db_pool_max: int = 10
    idempotency_ttl: float = 3600.0
    idempotency_capacity: int = 100_000
    idempotency_max_bytes: int = 64 << 20
    log_level: str = "info"
    tax_rates: dict[str, str] = field(default_factory=dict)
    tax_inclusive: bool = False
    webhook_secrets: tuple[Secret, ...] = ()
    payment_timeout: float = 900.0
    sweep_interval: float = 30.0  # seconds between in-process expiry sweeps; 0 turns them off
    redis_url: Secret | None = None
    stream_maxlen: int = 1_000_000
    stream_prefix: str = "orderfast:events:"
    jwt_public_keys: tuple[str, ...] = ()  # PEM files (RS256 / ES256)
    jwt_jwks_file: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: int = 30
    jwt_max_lifetime: int = 86_400
    trusted_proxies: tuple[Any, ...] = ()  # ip networks whose X-Forwarded-For is believed
    relay_in_process: bool | None = None  # None: in process exactly when the store is SQLite
    ratelimit_fail_open: bool = True  # with Redis limits: what to do when Redis is unreachable
    ratelimit_policies: tuple[RatePolicy, ...] = ()  # finer policies per route group, from a TOML file
    group_commit_max: int = 64  # most create-orders per PostgreSQL transaction (1: one order per commit)
    group_commit_inflight: int = 1  # create-order transactions in flight per worker

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            if name in SECRET_SETTINGS and (path := env.get(f"{ENV_PREFIX}{name}_FILE")):
                # Docker and Kubernetes secrets arrive as files: ORDERFAST_JWT_SECRET_FILE=/run/secrets/jwt.
                if value:
                    raise ConfigError(f"set {ENV_PREFIX}{name} or {ENV_PREFIX}{name}_FILE, not both")
                try:
                    value = Path(path).read_text().strip()
                except OSError as e:
                    raise ConfigError(f"{ENV_PREFIX}{name}_FILE: cannot read {path}: {e.strerror}") from None
                if not value:
                    raise ConfigError(f"{ENV_PREFIX}{name}_FILE: {path} is empty")
            return value if value not in (None, "") else None

        defaults = cls()
        url = get("DATABASE_URL")
        if url is not None and not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("ORDERFAST_DATABASE_URL must be a postgresql:// URL (unset = SQLite)")
        secret = get("JWT_SECRET")
        workers = get("WORKERS")
        port = get("PORT")
        pool_min = get("DB_POOL_MIN")
        pool_max = get("DB_POOL_MAX")
        body = get("MAX_BODY_BYTES")
        refresh = get("CATALOG_REFRESH")
        ttl = get("IDEMPOTENCY_TTL")
        capacity = get("IDEMPOTENCY_CAPACITY")
        max_bytes = get("IDEMPOTENCY_MAX_BYTES")
        settings = cls(
            database_url=Secret(url) if url else None,
            data_dir=Path(get("DATA_DIR") or defaults.data_dir),
            jwt_secret=Secret(secret) if secret else None,
            host=get("HOST") or defaults.host,
            port=_int(port, "ORDERFAST_PORT", minimum=0) if port else defaults.port,
            workers=_int(workers, "ORDERFAST_WORKERS", minimum=1) if workers else defaults.workers,
            ratelimit_user=RateQuota.parse(
                get("RATELIMIT_USER") or "100/1",
                get("RATELIMIT_USER_BURST"),
                "ORDERFAST_RATELIMIT_USER",
            ),
            ratelimit_ip=RateQuota.parse(
                get("RATELIMIT_IP") or "1000/1",
                get("RATELIMIT_IP_BURST"),
                "ORDERFAST_RATELIMIT_IP",
            ),
            max_body_bytes=(_int(body, "ORDERFAST_MAX_BODY_BYTES", minimum=1024) if body else defaults.max_body_bytes),
            body_timeout=_float(bt, "ORDERFAST_BODY_TIMEOUT") if (bt := get("BODY_TIMEOUT")) else 10.0,
            header_timeout=(
                _float(ht, "ORDERFAST_HEADER_TIMEOUT") if (ht := get("HEADER_TIMEOUT")) else defaults.header_timeout
            ),
            max_connections=(
                _int(mc, "ORDERFAST_MAX_CONNECTIONS", minimum=16)
                if (mc := get("MAX_CONNECTIONS"))
                else defaults.max_connections
            ),
            catalog_refresh=(_float(refresh, "ORDERFAST_CATALOG_REFRESH") if refresh else defaults.catalog_refresh),
            db_pool_min=_int(pool_min, "ORDERFAST_DB_POOL_MIN", minimum=1) if pool_min else 2,
            db_pool_max=_int(pool_max, "ORDERFAST_DB_POOL_MAX", minimum=1) if pool_max else 10,
            idempotency_ttl=_float(ttl, "ORDERFAST_IDEMPOTENCY_TTL") if ttl else defaults.idempotency_ttl,
            idempotency_capacity=(
                _int(capacity, "ORDERFAST_IDEMPOTENCY_CAPACITY", minimum=16)
                if capacity
                else defaults.idempotency_capacity
            ),
            idempotency_max_bytes=(
                _int(max_bytes, "ORDERFAST_IDEMPOTENCY_MAX_BYTES", minimum=1 << 16)
                if max_bytes
                else defaults.idempotency_max_bytes
            ),
            log_level=(get("LOG_LEVEL") or defaults.log_level).lower(),
            tax_rates=_tax_rates(get("TAX_RATES")),
            tax_inclusive=_bool(get("TAX_INCLUSIVE"), "ORDERFAST_TAX_INCLUSIVE"),
            webhook_secrets=tuple(Secret(x.strip()) for x in (get("WEBHOOK_SECRET") or "").split(",") if x.strip()),
            payment_timeout=(
                _float(timeout, "ORDERFAST_PAYMENT_TIMEOUT") if (timeout := get("PAYMENT_TIMEOUT")) else 900.0
            ),
            sweep_interval=_nonneg(get("SWEEP_INTERVAL"), "ORDERFAST_SWEEP_INTERVAL", 30.0),
            redis_url=Secret(r) if (r := get("REDIS_URL")) else None,
            stream_maxlen=_int(m, "ORDERFAST_STREAM_MAXLEN", minimum=1000)
            if (m := get("STREAM_MAXLEN"))
            else 1_000_000,
            stream_prefix=get("STREAM_PREFIX") or "orderfast:events:",
            ratelimit_fail_open=_failure_mode(get("RATELIMIT_ON_REDIS_FAILURE")),
            ratelimit_policies=load_rate_policies(Path(f)) if (f := get("RATELIMIT_FILE")) else (),
            group_commit_max=_int(g, "ORDERFAST_GROUP_COMMIT_MAX", minimum=1) if (g := get("GROUP_COMMIT_MAX")) else 64,
            group_commit_inflight=(
                _int(g, "ORDERFAST_GROUP_COMMIT_INFLIGHT", minimum=1) if (g := get("GROUP_COMMIT_INFLIGHT")) else 1
            ),
            trusted_proxies=_networks(get("TRUSTED_PROXIES")),
            jwt_public_keys=tuple(x.strip() for x in (get("JWT_PUBLIC_KEYS") or "").split(",") if x.strip()),
            jwt_jwks_file=get("JWT_JWKS_FILE"),
            jwt_issuer=get("JWT_ISSUER"),
            jwt_audience=get("JWT_AUDIENCE"),
            jwt_leeway=_int(lw, "ORDERFAST_JWT_LEEWAY", minimum=0) if (lw := get("JWT_LEEWAY")) else 30,
            jwt_max_lifetime=(
                _int(ml, "ORDERFAST_JWT_MAX_LIFETIME", minimum=60) if (ml := get("JWT_MAX_LIFETIME")) else 86_400
            ),
            relay_in_process=(
                None
                if get("RELAY_IN_PROCESS") is None
                else _bool(get("RELAY_IN_PROCESS"), "ORDERFAST_RELAY_IN_PROCESS")
            ),
        )
        if settings.db_pool_min > settings.db_pool_max:
            raise ConfigError("ORDERFAST_DB_POOL_MIN must not exceed ORDERFAST_DB_POOL_MAX")
        return settings

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "orderfast.db"

    @property
    def store_kind(self) -> str:
        return "postgres" if self.database_url else "sqlite"

    def hs256_secret(self) -> Secret | None:
        """The HS256 secret to verify with: the configured one; none when only public keys are
        configured; else (local use) this data directory's generated development secret."""
        if self.jwt_secret is None and (self.jwt_public_keys or self.jwt_jwks_file):
            return None
        return self.resolve_jwt_secret()

    def resolve_jwt_secret(self) -> Secret:
        """The configured secret, or this data directory's generated development secret."""
        if self.jwt_secret is not None:
            if len(self.jwt_secret.reveal().encode()) < 32:
                raise ConfigError("ORDERFAST_JWT_SECRET must be at least 32 bytes")
            return self.jwt_secret
        path = self.data_dir / "dev-jwt-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, then linked into place: when several workers start at once, exactly
            # one secret wins and nobody ever reads a half-written file.
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return Secret(path.read_text().strip())
