"""Every setting, declared once: its variable, type, default, bounds (the parser), meaning and
whether it is a secret. Reading the environment, secrets from ``*_FILE``, ``orderfast config show``
and the README's configuration table are all derived from these declarations.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orderfast.config import values as v
from orderfast.config.ratelimits import PolicyFile, RatePolicy, RateQuota, load_rate_policies
from orderfast.config.taxes import TaxFile, load_tax_table
from orderfast.config.values import ConfigError, Secret

ENV_PREFIX = "ORDERFAST_"


@dataclass(frozen=True, slots=True)
class Option:
    """How one setting is read and described."""

    env: str  # the variable, without ORDERFAST_
    parse: v.Parser
    doc: str
    default_doc: str | None = None  # the default as the docs say it, when its value does not
    secret: bool = False  # never shown; may also be read from the file named by <VAR>_FILE


def setting(
    default: Any = None,
    *,
    env: str,
    parse: v.Parser,
    doc: str,
    default_doc: str | None = None,
    secret: bool = False,
    factory: Callable[[], Any] | None = None,
) -> Any:
    meta = {"option": Option(env, parse, doc, default_doc, secret)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _quota(value: str, name: str) -> RateQuota:
    return RateQuota.parse(value, None, name)


def _policies(value: str, name: str) -> PolicyFile:
    return PolicyFile(Path(value), load_rate_policies(Path(value)))


def _tax_file(value: str, name: str) -> TaxFile:
    return TaxFile(Path(value), load_tax_table(Path(value)))


def _failure_mode(value: str, name: str) -> bool:
    mode: str = v.choice("open", "closed")(value, name)
    return mode == "open"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything orderfast can be told. Build with :meth:`from_env`."""

    # -- the service
    database_url: Secret | None = setting(
        env="DATABASE_URL",
        parse=v.postgres_url,
        secret=True,
        default_doc="unset → SQLite",
        doc="`postgresql://…` selects PostgreSQL",
    )
    database_read_url: Secret | None = setting(
        env="DATABASE_READ_URL",
        parse=v.postgres_urls,
        secret=True,
        default_doc="none",
        doc="read replicas (streaming standbys of the PostgreSQL primary), comma-separated `postgresql://…`: "
        "GET requests read orders and the catalog there when a replica is fresh enough; writes, decisions, "
        "the catalog snapshot and the feed stay on the primary (see Operations → Read replicas)",
    )
    read_max_lag: float = setting(
        1.0,
        env="READ_MAX_LAG",
        parse=v.number(),
        doc="seconds a read replica may be behind the primary and still serve reads",
    )
    data_dir: Path = setting(
        Path(".orderfast"),
        env="DATA_DIR",
        parse=v.path,
        doc="SQLite file (`orderfast.db`) and the development JWT secret",
    )
    host: str = setting("127.0.0.1", env="HOST", parse=v.text, doc="bind address (also `orderfast serve --host`)")
    port: int = setting(8000, env="PORT", parse=v.integer(0), doc="port (also `orderfast serve --port`)")
    workers: int = setting(
        1,
        env="WORKERS",
        parse=v.integer(1),
        doc="worker processes of `orderfast serve` and `serve-grpc` (also their `--workers`)",
    )
    log_level: str = setting(
        "info", env="LOG_LEVEL", parse=v.choice("debug", "info", "warning", "error"), doc="JSON logs on stderr"
    )
    access_log: bool = setting(
        False,
        env="ACCESS_LOG",
        parse=v.boolean,
        doc="one JSON line per request (method, path, route, status, duration, request id); also "
        "`orderfast serve --access-log`",
    )
    metrics: bool = setting(
        True, env="METRICS", parse=v.boolean, doc="Prometheus metrics: `/metrics` (or the metrics port)"
    )
    metrics_port: int | None = setting(
        env="METRICS_PORT",
        parse=v.integer(1),
        default_doc="unset",
        doc="serve `/metrics` on this port (on ORDERFAST_HOST, from the main process) instead of the API port",
    )
    metrics_dir: Path | None = setting(
        env="METRICS_DIR",
        parse=v.path,
        default_doc="a temporary directory per server",
        doc="where each process writes its metrics for the others to merge (`orderfast serve` makes one)",
    )
    tracing: bool = setting(
        False,
        env="TRACING",
        parse=v.boolean,
        doc="OpenTelemetry traces, exported over OTLP/HTTP (needs `pip install 'orderfast[otel]'`); the standard "
        "`OTEL_*` variables configure the exporter, sampler and service name (`orderfast`) — see Observability",
    )
    # -- identity
    jwt_secret: Secret | None = setting(
        env="JWT_SECRET",
        parse=v.secret,
        secret=True,
        default_doc="generated dev secret",
        doc="HS256 secret, at least 32 bytes. Unset (and no public keys): a random one is created once in "
        "`$ORDERFAST_DATA_DIR/dev-jwt-secret` (mode 600) by `orderfast serve` or `orderfast token` — for local use "
        "only",
    )
    jwt_previous_secrets: tuple[Secret, ...] = setting(
        (),
        env="JWT_PREVIOUS_SECRETS",
        parse=v.listed(v.secret),
        secret=True,
        default_doc="none",
        doc="HS256 secrets still accepted but no longer current, comma-separated: rotate by moving the "
        "old secret here while tokens signed with it live (at most ORDERFAST_JWT_MAX_LIFETIME)",
    )
    jwt_public_keys: tuple[str, ...] = setting(
        (),
        env="JWT_PUBLIC_KEYS",
        parse=v.listed(),
        default_doc="none",
        doc="RS256/ES256 verification keys: PEM files, comma-separated",
    )
    jwt_jwks_file: str | None = setting(
        env="JWT_JWKS_FILE", parse=v.text, default_doc="none", doc="RS256/ES256 verification keys: a local JWKS file"
    )
    jwt_issuer: str | None = setting(env="JWT_ISSUER", parse=v.text, default_doc="none", doc="required `iss` when set")
    jwt_audience: str | None = setting(
        env="JWT_AUDIENCE", parse=v.text, default_doc="none", doc="required `aud` when set"
    )
    jwt_leeway: int = setting(30, env="JWT_LEEWAY", parse=v.integer(0), doc="seconds of clock leeway")
    jwt_max_lifetime: int = setting(
        86_400, env="JWT_MAX_LIFETIME", parse=v.integer(60), doc="longest accepted `exp − iat`, in seconds"
    )
    trusted_proxies: tuple[Any, ...] = setting(
        (),
        env="TRUSTED_PROXIES",
        parse=v.networks,
        default_doc="none",
        doc="addresses/CIDRs whose `X-Forwarded-For` is believed",
    )
    tls_cert: Path | None = setting(
        env="TLS_CERT",
        parse=v.readable_file,
        default_doc="none",
        doc="serve HTTPS with this certificate chain (PEM; with ORDERFAST_TLS_KEY); otherwise plain HTTP",
    )
    tls_key: Path | None = setting(
        env="TLS_KEY", parse=v.readable_file, default_doc="none", doc="the certificate's private key (PEM, PKCS#8)"
    )
    tls_client_ca: Path | None = setting(
        env="TLS_CLIENT_CA",
        parse=v.readable_file,
        default_doc="none",
        doc="mutual TLS: only clients with a certificate from these CAs (PEM) get a connection at all; "
        "requests still authenticate as always (see Operations → Mutual TLS)",
    )
    client_cert_header: str | None = setting(
        env="CLIENT_CERT_HEADER",
        parse=v.header_name,
        default_doc="none",
        doc="mutual TLS at a proxy: the header in which a trusted proxy (ORDERFAST_TRUSTED_PROXIES) passes the "
        "verified client certificate's subject; its common name becomes a principal with the role `service`",
    )
    webhook_secrets: tuple[Secret, ...] = setting(
        (),
        env="WEBHOOK_SECRET",
        parse=v.listed(v.secret),
        secret=True,
        default_doc="unset (webhook answers 503)",
        doc="payment webhook secrets, comma-separated",
    )
    # -- limits
    ratelimit_user: RateQuota = setting(
        env="RATELIMIT_USER",
        parse=_quota,
        default_doc="`100/1`",
        factory=lambda: RateQuota(100, 1.0, 200),
        doc="per-user quota as `<requests>/<seconds>`",
    )
    ratelimit_user_burst: int | None = setting(
        env="RATELIMIT_USER_BURST", parse=v.integer(1), default_doc="2 × quota", doc="the per-user bucket size"
    )
    ratelimit_ip: RateQuota = setting(
        env="RATELIMIT_IP",
        parse=_quota,
        default_doc="`1000/1`",
        factory=lambda: RateQuota(1000, 1.0, 2000),
        doc="per client address (the TCP peer)",
    )
    ratelimit_ip_burst: int | None = setting(
        env="RATELIMIT_IP_BURST", parse=v.integer(1), default_doc="2 × quota", doc="the per-address bucket size"
    )
    ratelimit_file: PolicyFile | None = setting(
        env="RATELIMIT_FILE",
        parse=_policies,
        default_doc="none",
        doc="a TOML file of finer policies per route group (see Operations → Rate limits), read again by "
        "every worker within a second of a change; a bad new file is refused and logged, the policies in "
        "force kept",
    )
    ratelimit_fail_open: bool = setting(
        True,
        env="RATELIMIT_ON_REDIS_FAILURE",
        parse=_failure_mode,
        default_doc="`open`",
        doc="with Redis limits: `open` (per-worker limits only) or `closed` (503)",
    )
    max_body_bytes: int = setting(65536, env="MAX_BODY_BYTES", parse=v.integer(1024), doc="request body cap")
    body_timeout: float = setting(
        10.0, env="BODY_TIMEOUT", parse=v.number(), doc="seconds to receive a whole body (a trickling body gets 408)"
    )
    header_timeout: float = setting(
        10.0,
        env="HEADER_TIMEOUT",
        parse=v.number(),
        doc="seconds a connection may take to send a request head, counted from accept and from the previous "
        "response: a silent socket is closed after it, and it is the keep-alive idle timeout (behind a load "
        "balancer that keeps idle connections, set it above the balancer's idle timeout)",
    )
    max_connections: int = setting(
        4096,
        env="MAX_CONNECTIONS",
        parse=v.integer(16),
        doc="open connections per worker; past it, new connections wait in the listen backlog "
        "(`serve --backlog`, default 4096)",
    )
    drain_delay: float = setting(
        5.0,
        env="DRAIN_DELAY",
        parse=v.number(zero=True),
        doc="on SIGTERM: seconds during which /readyz answers 503 and requests are still served (responses "
        "say `Connection: close`) before the listener closes — time for a load balancer to stop sending; "
        "SIGINT (Ctrl-C) skips it",
    )
    shutdown_timeout: float = setting(
        20.0,
        env="SHUTDOWN_TIMEOUT",
        parse=v.number(),
        doc="after the listener closes: seconds a worker gets to finish the requests it accepted, then it "
        "is killed (a pod's grace period should exceed drain delay + this)",
    )
    # -- overload and failing dependencies
    request_timeout: float = setting(
        5.0,
        env="REQUEST_TIMEOUT",
        parse=v.number(),
        doc="a request's budget for the database and Redis — waiting for a pooled connection, every statement "
        "(also the server's `statement_timeout`), Redis calls; past it the answer is 503 `store-unavailable` "
        "with `Retry-After` (see Reliability for what a timed-out create-order means)",
    )
    admission: bool = setting(
        True,
        env="ADMISSION",
        parse=v.boolean,
        doc="adaptive concurrency limit per worker: requests beyond it get a fast 503 `overloaded` before their "
        "body is read (probes and `/metrics` never); serve-grpc's calls likewise, as `UNAVAILABLE`",
    )
    admission_max: int = setting(
        256,
        env="ADMISSION_MAX",
        parse=v.integer(1),
        doc="the adaptive limit's ceiling: most requests one worker handles at once",
    )
    admission_min: int = setting(
        128,
        env="ADMISSION_MIN",
        parse=v.integer(1),
        doc="the adaptive limit's floor (at most the ceiling): requests one worker always admits at once, whatever "
        "its latency (a batching worker's latency rises with concurrency well before it is overloaded; 128 is two "
        "full batches of create-orders)",
    )
    admission_tolerance: float = setting(
        8.0,
        env="ADMISSION_TOLERANCE",
        parse=v.number(),
        doc="how far the mean latency may rise above the worker's unloaded latency before the limit shrinks: "
        "lower keeps admitted requests faster, higher keeps more throughput (see Performance → Overload)",
    )
    breaker_failures: int = setting(
        5,
        env="BREAKER_FAILURES",
        parse=v.integer(1),
        doc="consecutive failures (unreachable, timed out) of PostgreSQL or Redis that open its circuit breaker",
    )
    breaker_cooldown: float = setting(
        1.0,
        env="BREAKER_COOLDOWN",
        parse=v.number(),
        doc="seconds an open breaker fails fast before it lets one probe call through (half-open)",
    )
    # -- pricing and orders
    tax_rates: dict[str, str] = setting(
        env="TAX_RATES",
        parse=v.tax_rates,
        factory=dict,
        default_doc="none",
        doc="tax classes, e.g. `standard=20,reduced=5.5` (percent, exact)",
    )
    tax_file: TaxFile | None = setting(
        env="TAX_FILE",
        parse=_tax_file,
        default_doc="none",
        doc='the tax classes from a TOML file instead (`standard = "20"`), read again by every worker '
        "within a second of a change; a bad new table, or one without a class products use, is refused "
        "and logged, the table in force kept",
    )
    tax_inclusive: bool = setting(
        False, env="TAX_INCLUSIVE", parse=v.boolean, doc="`true` when catalog prices include tax"
    )
    catalog_refresh: float = setting(
        0.5, env="CATALOG_REFRESH", parse=v.number(), doc="seconds between catalog snapshot refreshes"
    )
    payment_timeout: float = setting(
        900.0, env="PAYMENT_TIMEOUT", parse=v.number(), doc="seconds an order may stay unpaid"
    )
    sweep_interval: float = setting(
        30.0,
        env="SWEEP_INTERVAL",
        parse=v.number(zero=True),
        doc="seconds between in-process expiry sweeps (0: off)",
    )
    idempotency_ttl: float = setting(
        3600.0, env="IDEMPOTENCY_TTL", parse=v.number(), doc="seconds the in-process idempotency map keeps a response"
    )
    idempotency_capacity: int = setting(
        100_000, env="IDEMPOTENCY_CAPACITY", parse=v.integer(16), doc="most responses the idempotency map keeps"
    )
    idempotency_max_bytes: int = setting(
        16 << 20,
        env="IDEMPOTENCY_MAX_BYTES",
        parse=v.integer(1 << 16),
        default_doc="16 MiB",
        doc="most bytes the idempotency map keeps (~25 000 three-line orders; the retry of a key it has let go "
        "is answered from the database record instead)",
    )
    # -- the database
    db_pool_min: int = setting(2, env="DB_POOL_MIN", parse=v.integer(1), doc="asyncpg pool size per worker, at least")
    db_pool_max: int = setting(10, env="DB_POOL_MAX", parse=v.integer(1), doc="asyncpg pool size per worker, at most")
    group_commit_max: int = setting(
        64,
        env="GROUP_COMMIT_MAX",
        parse=v.integer(1),
        doc="most create-orders written in one transaction (1: one order per commit)",
    )
    group_commit_inflight: int = setting(
        1,
        env="GROUP_COMMIT_INFLIGHT",
        parse=v.integer(1),
        doc="create-order transactions in flight per worker on PostgreSQL (SQLite: always 1); more only lowers "
        "throughput and raises latency on the measured machine (see Performance)",
    )
    # -- events
    redis_url: Secret | None = setting(
        env="REDIS_URL",
        parse=v.secret,
        secret=True,
        default_doc="unset",
        doc="Redis for shared rate limits, the relay and the consumer example",
    )
    stream_maxlen: int = setting(
        1_000_000, env="STREAM_MAXLEN", parse=v.integer(1000), doc="streams are trimmed to about this many entries"
    )
    stream_prefix: str = setting(
        "orderfast:events:", env="STREAM_PREFIX", parse=v.text, doc="stream names: the prefix, then the event type"
    )
    flags_file: Path | None = setting(
        env="FLAGS_FILE",
        parse=v.path,
        default_doc="none",
        doc="feature flags (TOML: `coupons`, `ratelimit_fail_closed`), read again by every worker within a "
        "second of a change; a bad new file is refused and logged, the flags in force kept (see Operations → "
        "Live configuration)",
    )
    grpc_max_connection_age: float = setting(
        300.0,
        env="GRPC_MAX_CONNECTION_AGE",
        parse=v.number(zero=True),
        doc="`orderfast serve-grpc`: seconds after which a client connection is told to go away (GOAWAY; "
        "calls in flight get ORDERFAST_SHUTDOWN_TIMEOUT), so clients reconnect and spread over instances an "
        "autoscaler added; 0: never",
    )
    temporal_address: str | None = setting(
        env="TEMPORAL_ADDRESS",
        parse=v.text,
        default_doc="none",
        doc="a Temporal frontend (`host:7233`): unpaid orders then expire through `orderfast worker temporal`'s "
        "workflows instead of the sweeper, which the API no longer runs (see Operations → The payment saga)",
    )
    temporal_namespace: str = setting("default", env="TEMPORAL_NAMESPACE", parse=v.text, doc="the Temporal namespace")
    temporal_task_queue: str = setting(
        "orderfast-orders", env="TEMPORAL_TASK_QUEUE", parse=v.text, doc="the task queue of the order workflows"
    )
    read_cache: bool = setting(
        False,
        env="READ_CACHE",
        parse=v.boolean,
        doc="a shared cache of order documents in Redis in front of `GET /v1/orders/{id}` (needs "
        "ORDERFAST_REDIS_URL; see Operations → Order cache)",
    )
    read_cache_ttl: float = setting(
        30.0, env="READ_CACHE_TTL", parse=v.number(), doc="seconds an order stays in the shared cache (each ±10 %)"
    )
    relay_lease: float = setting(
        5.0,
        env="RELAY_LEASE",
        parse=v.number(),
        doc="seconds a relay's claim on a batch of events lasts unless renewed (it renews while it works): a "
        "killed relay's batch is taken over after at most this",
    )
    relay_in_process: bool | None = setting(
        env="RELAY_IN_PROCESS",
        parse=v.boolean,
        default_doc="SQLite: yes, PostgreSQL: no",
        doc="run the relay inside each worker",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        if file := env.get(ENV_FILE):
            env = {**read_env_file(Path(file)), **env}  # the environment wins over the file
        given = {}
        for f, option in options():
            raw = _read(env, option)
            if raw is not None:
                given[f.name] = option.parse(raw, ENV_PREFIX + option.env)
        settings = cls(**given)
        return settings._checked()

    def _checked(self) -> Settings:
        """The rules that span settings."""
        if self.db_pool_min > self.db_pool_max:
            raise ConfigError("ORDERFAST_DB_POOL_MIN must not exceed ORDERFAST_DB_POOL_MAX")
        if self.database_read_url is not None and self.database_url is None:
            raise ConfigError("ORDERFAST_DATABASE_READ_URL needs ORDERFAST_DATABASE_URL (its primary)")
        if self.read_cache and self.redis_url is None:
            raise ConfigError("ORDERFAST_READ_CACHE needs ORDERFAST_REDIS_URL")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("ORDERFAST_TLS_CERT and ORDERFAST_TLS_KEY go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError(
                "ORDERFAST_TLS_CLIENT_CA needs ORDERFAST_TLS_CERT and ORDERFAST_TLS_KEY (TLS to verify clients in)"
            )
        if self.client_cert_header is not None and not self.trusted_proxies:
            raise ConfigError(
                "ORDERFAST_CLIENT_CERT_HEADER needs ORDERFAST_TRUSTED_PROXIES: the header is believed only from them"
            )
        if self.tax_rates and self.tax_file is not None:
            raise ConfigError("set ORDERFAST_TAX_RATES or ORDERFAST_TAX_FILE, not both")
        changes: dict[str, Any] = {}
        if self.ratelimit_user_burst is not None:
            changes["ratelimit_user"] = dataclasses.replace(self.ratelimit_user, burst=self.ratelimit_user_burst)
        if self.ratelimit_ip_burst is not None:
            changes["ratelimit_ip"] = dataclasses.replace(self.ratelimit_ip, burst=self.ratelimit_ip_burst)
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def ratelimit_policies(self) -> tuple[RatePolicy, ...]:
        """The finer policies at start (the file's; none without one)."""
        return self.ratelimit_file.policies if self.ratelimit_file is not None else ()

    @property
    def taxes(self) -> dict[str, str]:
        """The tax table at start: the file's, or ORDERFAST_TAX_RATES."""
        return dict(self.tax_file.rates) if self.tax_file is not None else self.tax_rates

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "orderfast.db"

    @property
    def dev_jwt_secret_path(self) -> Path:
        return self.data_dir / "dev-jwt-secret"

    @property
    def dev_webhook_secret_path(self) -> Path:
        return self.data_dir / "dev-webhook-secret"

    @property
    def store_kind(self) -> str:
        return "postgres" if self.database_url else "sqlite"

    def hs256_secret(self) -> Secret | None:
        """The HS256 secret to verify with: the configured one; none when only public keys are
        configured; else (local use) this data directory's development secret, which must exist
        (building the app writes nothing: ``orderfast serve`` and ``orderfast token`` create it)."""
        if self.jwt_secret is None and (self.jwt_public_keys or self.jwt_jwks_file):
            return None
        return self.resolve_jwt_secret(create=False)

    def resolve_jwt_secret(self, *, create: bool = True) -> Secret:
        """The configured secret, or this data directory's generated development secret
        (created when missing, if ``create``)."""
        if self.jwt_secret is not None:
            if len(self.jwt_secret.reveal().encode()) < 32:
                raise ConfigError("ORDERFAST_JWT_SECRET must be at least 32 bytes")
            return self.jwt_secret
        path = self.dev_jwt_secret_path
        if not path.exists() and not create:
            raise ConfigError(
                f"no JWT secret: set ORDERFAST_JWT_SECRET (or public keys), or let `orderfast serve` create "
                f"the development secret in {path}"
            )
        return _development_secret(path)

    def with_demo_defaults(self) -> Settings:
        """``orderfast serve --demo`` (what ``make run`` serves): what the README's examples use and the
        environment leaves unset — the demo tax table, and a payment webhook secret generated once in
        the data directory (``dev_webhook_secret_path``) so a local payment can be signed."""
        changes: dict[str, Any] = {}
        if not self.tax_rates and self.tax_file is None:
            changes["tax_rates"] = dict(DEMO_TAX_RATES)
        if not self.webhook_secrets:
            changes["webhook_secrets"] = (_development_secret(self.dev_webhook_secret_path),)
        return dataclasses.replace(self, **changes) if changes else self


# The tax classes ``orderfast serve --demo`` knows when ORDERFAST_TAX_RATES is unset (percent).
DEMO_TAX_RATES = {"standard": "20", "reduced": "5.5"}


def _development_secret(path: Path) -> Secret:
    """The secret kept in ``path``, created (random, mode 0600) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: when several processes start at once, exactly
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


ENV_FILE = ENV_PREFIX + "ENV_FILE"


def read_env_file(path: Path) -> dict[str, str]:
    """``ORDERFAST_*=value`` lines of a dotenv-style file (``#`` comments, blank lines, an optional
    ``export``, values optionally in matching quotes); any other variable is refused."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{ENV_FILE}: cannot read {path}: {e.strerror}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.startswith(ENV_PREFIX) or name == ENV_FILE:
            raise ConfigError(f"{ENV_FILE}: {path} line {number}: expected ORDERFAST_<NAME>=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def options() -> Iterator[tuple[dataclasses.Field[Any], Option]]:
    for f in dataclasses.fields(Settings):
        yield f, f.metadata["option"]


def _read(env: Mapping[str, str], option: Option) -> str | None:
    name = ENV_PREFIX + option.env
    value = env.get(name)
    if option.secret and (file := env.get(f"{name}_FILE")):
        # Docker and Kubernetes secrets arrive as files: ORDERFAST_JWT_SECRET_FILE=/run/secrets/jwt.
        if value:
            raise ConfigError(f"set {name} or {name}_FILE, not both")
        try:
            value = Path(file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"{name}_FILE: cannot read {file}: {e.strerror}") from None
        if not value:
            raise ConfigError(f"{name}_FILE: {file} is empty")
    return value if value not in (None, "") else None


def _default_text(f: dataclasses.Field[Any], option: Option) -> str:
    if option.default_doc is not None:
        return option.default_doc
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return f"`{default}`"


def docs_table() -> str:
    """The README's configuration table, made from the declarations."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for f, option in options():
        rows.append(f"| `{ENV_PREFIX}{option.env}` | {_default_text(f, option)} | {option.doc} |")
    return "\n".join(rows) + "\n"


def describe(settings: Settings, env: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(variable, value, where it came from) for every setting; secrets masked."""
    env = os.environ if env is None else env
    from_file = read_env_file(Path(file)) if (file := env.get(ENV_FILE)) else {}
    out = []
    for f, option in options():
        name = ENV_PREFIX + option.env
        if env.get(f"{name}_FILE"):
            source = "secret file"
        elif env.get(name):
            source = "env"
        elif from_file.get(name):
            source = "env file"
        else:
            source = "default"
        value = getattr(settings, f.name)
        if option.secret:
            shown = "(unset)" if not value else "**********"
        elif value is None or value == ():
            shown = "(unset)"
        elif isinstance(value, tuple):
            shown = ", ".join(str(getattr(x, "name", x)) for x in value)
        else:
            shown = str(value)
        out.append((name, shown, source))
    return out
