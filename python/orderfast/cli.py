"""``orderfast serve | migrate | relay | outbox | sweep | reconcile | apikey | token | config``: thin entry
points."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orderfast import bootstrap
from orderfast.config import ConfigError, Settings, describe, docs_table
from orderfast.http.auth import mint_token
from orderfast.observability.logging import configure as configure_logging
from orderfast.outbox.relay import Relay, RelaySettings
from orderfast.services.catalog import seed_demo
from orderfast.store.base import Store, StoreError

if TYPE_CHECKING:
    from starlette.applications import Starlette

relay_log = logging.getLogger("orderfast.relay")


def _migrate(settings: Settings, args: argparse.Namespace) -> None:
    seed = args.seed_demo
    if args.check:
        if seed:
            raise ConfigError("orderfast migrate --check applies nothing: it cannot --seed-demo")

        async def check() -> None:
            # Opening checks the schema: an older one raises (main prints it, exit 1).
            async with bootstrap.opened_store(settings) as store:
                print(f"{store.kind}: schema up to date")

        asyncio.run(check())
        return

    async def run() -> None:
        async with bootstrap.opened_store(settings, check_schema=False, budget=False) as store:
            applied = await store.migrate()
            print(f"{store.kind}: " + (f"applied {', '.join(applied)}" if applied else "schema up to date"))
            if seed:
                seeded = await seed_demo(store)
                if seeded:
                    print(f"{store.kind}: seeded demo catalog ({', '.join(seeded)})")

    asyncio.run(run())


def _hint(settings: Settings, host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    text = f"""
orderfast is starting on {base} ({settings.store_kind} store, data in {settings.data_dir.resolve()})

  # a token for customer u-1 (add --role admin for catalog changes)
  TOKEN=$(.venv/bin/orderfast token --sub u-1)

  # create an order (run it twice: the second answer is the replay of the first)
  curl -si {base}/v1/orders -H "Authorization: Bearer $TOKEN" \\
       -H "Idempotency-Key: demo-1" -H "Content-Type: application/json" \\
       -d '{{"currency": "USD", "items": [{{"sku": "SKU-1", "quantity": 2}}], "expected_total": "199.00"}}'

  # your orders
  curl -s {base}/v1/orders -H "Authorization: Bearer $TOKEN"
"""
    secret_file = settings.dev_webhook_secret_path.resolve()
    if secret_file.exists() and any(s.reveal() == secret_file.read_text().strip() for s in settings.webhook_secrets):
        text += f"""
  # pay that order as the payment provider would: a body signed with the webhook secret
  # (this demo's is in {secret_file})
  ORDER=$(curl -s {base}/v1/orders -H "Authorization: Bearer $TOKEN" \\
       -H "Idempotency-Key: demo-1" -H "Content-Type: application/json" \\
       -d '{{"currency": "USD", "items": [{{"sku": "SKU-1", "quantity": 2}}], "expected_total": "199.00"}}' \\
       | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  BODY='{{"event_id": "evt-1", "order_id": "'$ORDER'", "status": "succeeded", "amount": "199.00", "currency": "USD"}}'
  T=$(date +%s)
  SIG=$(printf '%s.%s' "$T" "$BODY" | openssl dgst -sha256 -hmac "$(cat {secret_file})" | sed 's/^.* //')
  curl -si {base}/v1/payments/webhook -H "Orderfast-Signature: t=$T,v1=$SIG" \\
       -H "Content-Type: application/json" -d "$BODY"
"""
    return (
        text
        + f"""
  # the API, to read and try: {base}/docs   (the contract: {base}/openapi.json)
"""
    )


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    from orderfast.observability.logging import granian_config as granian_logging
    from orderfast.serving import DrainingServer, worker_app

    settings = dataclasses.replace(
        settings,
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
        workers=args.workers or settings.workers,
    )
    if args.demo:
        settings = settings.with_demo_defaults()
    if args.access_log:
        settings = dataclasses.replace(settings, access_log=True)
    host, port, workers = settings.host, settings.port, settings.workers
    # In development, create the JWT secret once, here, before the workers start: building the app
    # writes nothing.
    if settings.jwt_secret is None and not (settings.jwt_public_keys or settings.jwt_jwks_file):
        settings.resolve_jwt_secret()
    if args.hint:
        print(_hint(settings, host, port), flush=True)
    if settings.store_kind == "sqlite" and workers > 1:
        print(
            f"orderfast: note: {workers} workers share one SQLite file and contend for its write lock; "
            "one worker is faster and has a far better tail latency. Use PostgreSQL to scale out.",
            file=sys.stderr,
        )
    _raise_open_files_limit(workers * settings.max_connections)
    made_metrics_dir = settings.metrics and settings.metrics_dir is None
    if settings.metrics:
        settings = dataclasses.replace(settings, metrics_dir=_metrics_directory(settings.metrics_dir))
    _check_before_serving(settings)
    # Everything imported and built so far lives as long as the workers forked from here: out of
    # the collector's sight, each worker's start-up collection (app.tune_gc) walks only what the
    # worker made itself (~30 ms less to a start: bench/startup.py), and no worker's collections
    # write to these objects' pages, which the workers then keep sharing with this process.
    gc.freeze()
    if settings.metrics and settings.metrics_port is not None:
        assert settings.metrics_dir is not None
        _serve_metrics(settings.host, settings.metrics_port, settings.metrics_dir)
    server = DrainingServer(
        "orderfast.app:create_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        factory=True,
        log_access=False,  # the app writes the access log (with the request id): ORDERFAST_ACCESS_LOG
        log_level=LogLevels(settings.log_level),
        log_dictconfig=granian_logging(),  # its lines as JSON on stderr, like orderfast's own
        backlog=args.backlog,
        # HTTP/1.1 only: in "auto" mode the server first waits, without any timeout, for the bytes
        # that tell HTTP/1 from cleartext HTTP/2, so a socket that never sends one stays open for
        # ever, and h2c skipped the HTTP/1 head limits. HTTP/2 belongs at the TLS proxy in front.
        http=HTTPModes.http1,
        websockets=False,  # no route speaks it: an upgrade is answered as plain HTTP
        # Connections per worker (Granian's backpressure counts connections, idle ones included):
        # well above what idle sockets can pile up within one header timeout at a modest rate.
        backpressure=settings.max_connections,
        # The head must arrive within the header timeout, counted from accept and from the previous
        # response (so a silent or idle socket is closed), within an 80 KiB read buffer.
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout * 1000), max_buffer_size=80 * 1024
        ),
        # SIGTERM drains first (orderfast/serving.py); a worker still busy this long after its
        # listener closed is killed.
        drain_delay=settings.drain_delay,
        workers_kill_timeout=math.ceil(settings.shutdown_timeout),
        # A worker that dies (killed for memory, say) is replaced; the others keep serving. (Granian
        # still stops on a crash loop: the same worker dying again within 5.5 s.)
        respawn_failed_workers=True,
        # HTTPS when a certificate is set; with a client CA, mutual TLS: a client without a
        # certificate from it gets no connection (TLS 1.2 and 1.3).
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_key,
        ssl_ca=settings.tls_client_ca,
        ssl_client_verify=settings.tls_client_ca is not None,
        ssl_protocol_min=SSLProtocols.tls12,
    )
    try:
        # Each worker builds its app from these very settings (flags applied), not from the environment.
        server.serve(target_loader=functools.partial(worker_app, settings), wrap_loader=False)
    finally:
        if made_metrics_dir and settings.metrics_dir is not None:
            shutil.rmtree(settings.metrics_dir, ignore_errors=True)


def _metrics_directory(configured: Path | None) -> Path:
    """Where the workers write their metrics: the configured directory, emptied of an earlier run's
    files (a restarted container would otherwise count them again), or a new temporary one."""
    if configured is None:
        return Path(tempfile.mkdtemp(prefix="orderfast-metrics-"))
    configured.mkdir(parents=True, exist_ok=True)
    for stale in configured.glob("*.json"):
        stale.unlink(missing_ok=True)
    return configured


def _serve_metrics(host: str, port: int, directory: Path) -> None:
    """``GET /metrics`` on its own port, answered by the main process from the workers' files (so
    it can stay off the public API port)."""
    import http.server
    import threading

    from orderfast.observability.metrics import CONTENT_TYPE, collect, exposition

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = exposition(collect(directory))
            self.send_response(200)
            self.send_header("content-type", CONTENT_TYPE)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    try:
        httpd = http.server.ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise ConfigError(f"cannot serve metrics on {host}:{port} ({e.strerror}): ORDERFAST_METRICS_PORT") from None
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="orderfast-metrics", daemon=True).start()


def _check_before_serving(settings: Settings, host: str | None = None, port: int | None = None) -> Starlette:
    """Every start-up failure the workers would meet, met once here with one clear line (main prints
    it and exits non-zero) instead of a traceback per worker: a setting the app cannot use, a port
    already taken, a database unreachable or not migrated. Returns the app it built (never served)."""
    import socket

    from orderfast.app import create_app

    app = create_app(settings)  # builds everything, opens nothing: settings and key files are checked
    host, port = host or settings.host, port or settings.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR (as servers set it: a port in TIME_WAIT is free) but not SO_REUSEPORT: a port
        # another server listens on, even one that would share it, refuses the bind.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({e.strerror}); pick another port with "
                f"--port N or ORDERFAST_PORT (make run PORT=N)"
            ) from None

    async def check_store() -> None:
        # One connection is enough to tell reachable and migrated (a pool's first connection is
        # opened before the others: each more would lengthen the start).
        async with bootstrap.opened_store(dataclasses.replace(settings, db_pool_min=1)):
            pass

    asyncio.run(check_store())
    return app


def _raise_open_files_limit(wanted: int) -> None:
    """Each connection is a file descriptor: lift the soft limit to the hard one (workers inherit
    it), and say so when even that is below what the connection limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < wanted + 256:
        print(
            f"orderfast: note: the open-files limit ({hard}) is below workers x ORDERFAST_MAX_CONNECTIONS "
            f"({wanted}); raise it (ulimit -n) or lower ORDERFAST_MAX_CONNECTIONS",
            file=sys.stderr,
        )


def _sweep(settings: Settings, args: argparse.Namespace) -> None:
    from orderfast.services.lifecycle import LifecycleService

    interval = args.interval or settings.sweep_interval
    if args.forever and not interval > 0:
        raise ConfigError("orderfast sweep --forever needs --interval (ORDERFAST_SWEEP_INTERVAL is 0)")

    async def run() -> None:
        async with bootstrap.opened_store(settings) as store:
            service = LifecycleService(store, payment_timeout=settings.payment_timeout)
            while True:
                logging.getLogger("orderfast.sweep").info("expired %d unpaid orders", await service.sweep())
                if not args.forever:
                    return
                await asyncio.sleep(interval)

    asyncio.run(run())


async def _until_signalled(relay: Relay, grace: float) -> None:
    """Runs the relay until SIGTERM or SIGINT; the batch in hand is finished (or, past ``grace`` seconds,
    abandoned and its claims released) so the next relay need not wait out a lease."""
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(relay.run_forever())

    def stop(signame: str) -> None:
        relay_log.info("%s: finishing the batch in hand, then stopping", signame)
        relay.stop()
        loop.call_later(grace, task.cancel)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        await task
    except asyncio.CancelledError:
        relay_log.info("stopped mid-batch; its events are released for the next relay")
        return
    relay_log.info("stopped")


def _relay_metrics(settings: Settings, store: Store) -> list[asyncio.Task[None]]:
    """With ORDERFAST_METRICS_PORT, the relay serves its own /metrics (publishing, lag, dead)."""
    if not (settings.metrics and settings.metrics_port is not None):
        return []
    from orderfast.observability.metrics import REGISTRY
    from orderfast.outbox.relay import outbox_gauges_forever

    directory = _metrics_directory(settings.metrics_dir)
    REGISTRY.directory = directory
    _serve_metrics(settings.host, settings.metrics_port, directory)
    return [asyncio.create_task(REGISTRY.write_forever()), asyncio.create_task(outbox_gauges_forever(store))]


def _relay(settings: Settings, args: argparse.Namespace) -> None:
    from orderfast.app import check_tracing
    from orderfast.observability import tracing

    check_tracing(settings)

    async def run() -> None:
        async with (
            bootstrap.opened_publisher(settings, required=True) as publisher,
            bootstrap.opened_store(settings) as store,
        ):
            assert publisher is not None
            lease = args.lease or settings.relay_lease
            relay = Relay(store, publisher, RelaySettings(batch=args.batch, lease_seconds=lease))
            background = _relay_metrics(settings, store)
            # On PostgreSQL, a commit of outbox rows wakes the relay at once (LISTEN/NOTIFY).
            stop_listening = await store.listen_outbox(relay.wake.set)
            relay_log.info("publishing the %s outbox to Redis Streams", store.kind)
            try:
                if args.once:
                    while await relay.run_once() == args.batch:
                        pass
                else:
                    await _until_signalled(relay, settings.shutdown_timeout)
            finally:
                for task in background:
                    task.cancel()
                if stop_listening is not None:
                    await stop_listening()

    # Traced, each batch is a span, each event's publishing one in the trace of the request that
    # made it (ORDERFAST_TRACING, OTEL_*); what is queued is flushed on the way out.
    with tracing.started() if settings.tracing else contextlib.nullcontext():
        asyncio.run(run())


def _serve_grpc(settings: Settings, args: argparse.Namespace) -> None:
    try:
        import grpc  # noqa: F401 - only to say what is missing, before anything else starts
        import grpc_health  # noqa: F401
    except ImportError:
        raise ConfigError("orderfast serve-grpc needs the grpc extra: pip install 'orderfast[grpc]'") from None
    from orderfast.app import check_policy_routes, create_app
    from orderfast.observability.metrics import REGISTRY

    host = args.host or settings.host
    metrics = settings.metrics and settings.metrics_port is not None
    if args.worker_process:
        # One of --workers N, started by the main process below, which made the checks and serves
        # the metrics port; this one writes its metrics where the main process reads them.
        http_routes = create_app(settings).routes
        if metrics:
            REGISTRY.directory = settings.metrics_dir
    else:
        # The HTTP API's routes: a reloaded rate-limit file must name routes of them, as in its workers.
        http_routes = _check_before_serving(settings, host, args.port).routes
        if metrics:
            assert settings.metrics_port is not None
            REGISTRY.directory = _metrics_directory(settings.metrics_dir)
            _serve_metrics(host, settings.metrics_port, REGISTRY.directory)
        workers = args.workers or settings.workers
        if workers > 1:
            from orderfast.rpc.workers import Supervisor

            argv = [sys.executable, "-m", "orderfast", "serve-grpc", "--host", host, "--port", str(args.port)]
            env = {**os.environ, "ORDERFAST_METRICS_DIR": str(REGISTRY.directory)} if metrics else dict(os.environ)
            stop_timeout = settings.drain_delay + settings.shutdown_timeout + 10
            raise SystemExit(Supervisor([*argv, "--worker-process"], workers, env, stop_timeout).run())
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop comes with granian[uvloop]
        pass
    from orderfast.rpc.server import serve

    asyncio.run(
        serve(settings, host, args.port, metrics=metrics, check_routes=lambda p: check_policy_routes(p, http_routes))
    )


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    try:
        import temporalio  # noqa: F401 - only to say what is missing
    except ImportError:
        raise ConfigError(
            "orderfast worker temporal needs the temporal extra: pip install 'orderfast[temporal]'"
        ) from None
    from orderfast.saga.temporal import run

    asyncio.run(run(settings))


def _outbox(settings: Settings, args: argparse.Namespace) -> None:
    async def run() -> int:
        async with bootstrap.opened_store(settings) as store:
            if args.outbox_command == "dead":
                dead = await store.dead_events(args.limit)
                for d in dead:
                    print(
                        f"{d.event_id}  {d.event_type}  order={d.aggregate_id} seq={d.sequence} "
                        f"attempts={d.attempts} dead_at={d.dead_at.isoformat()}  {d.last_error or ''}"
                    )
                print(f"{len(dead)} dead events")
                return 0
            if await store.replay_dead(args.event_id):
                print(f"{args.event_id}: queued for publishing again")
                return 0
            print(f"{args.event_id}: no such dead event", file=sys.stderr)
            return 1

    code = asyncio.run(run())
    if code:
        raise SystemExit(code)


def _reconcile(settings: Settings, args: argparse.Namespace) -> None:
    from orderfast.services.reconcile import reconcile

    async def run() -> int:
        async with (
            bootstrap.opened_publisher(settings, required=False) as publisher,
            bootstrap.opened_store(settings, budget=False) as store,
        ):
            found = await reconcile(store, publisher, republish=args.republish)
        for d in found:
            print(f"{d.kind}\t{d.subject}\t{d.detail}")
        requeued = sum(d.kind == "lost_in_broker" for d in found) if args.republish else 0
        print(f"{len(found)} discrepancies" + (f" ({requeued} lost events queued again)" if requeued else ""))
        return 1 if found else 0

    code = asyncio.run(run())
    if code:
        raise SystemExit(code)


def _apikey(settings: Settings, args: argparse.Namespace) -> None:
    from orderfast.services.api_keys import ApiKeyService, key_document

    async def run() -> int:
        async with bootstrap.opened_store(settings) as store:
            keys = ApiKeyService(store)
            if args.apikey_command == "create":
                key, record = await keys.create(args.name, args.role)
                print(f"{key}\n(prefix {record.prefix}; shown once: store it now)")
            elif args.apikey_command == "list":
                for k in await keys.list():
                    doc = key_document(k)
                    state = "revoked" if doc["revoked"] else "active"
                    print(f"{doc['prefix']}  {state:8s} {','.join(k.roles):14s} {doc['created_at']}  {k.name}")
            elif not await keys.revoke(args.prefix):
                print(f"{args.prefix}: no such active key", file=sys.stderr)
                return 1
            else:
                print(f"{args.prefix}: revoked")
            return 0

    code = asyncio.run(run())
    if code:
        raise SystemExit(code)


def _token(settings: Settings, args: argparse.Namespace) -> None:
    secret = settings.resolve_jwt_secret().reveal()
    if settings.jwt_secret is None:
        # On stderr, so that TOKEN=$(orderfast token ...) still captures the token alone.
        print(
            f"orderfast: signed with the development secret in {settings.dev_jwt_secret_path.resolve()} "
            "(a server verifies it only with the same ORDERFAST_DATA_DIR)",
            file=sys.stderr,
        )
    token = mint_token(
        secret,
        args.sub,
        args.role or (),
        ttl=args.ttl or settings.jwt_max_lifetime,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    print(token)


def _config(settings: Settings, args: argparse.Namespace) -> None:
    if args.config_command == "docs":
        print(docs_table(), end="")
        return
    rows = describe(settings)
    from orderfast.config import Flags, load_flags

    flags = load_flags(settings.flags_file) if settings.flags_file is not None else Flags()
    source = "flags file" if settings.flags_file is not None else "default"
    rows += [(f"flag {name}", value, source) for name, value in flags.shown().items()]
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        print(f"{name:{width}}  {value}  ({source})")


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "serve": _serve,
    "serve-grpc": _serve_grpc,
    "worker": _worker,
    "migrate": _migrate,
    "relay": _relay,
    "outbox": _outbox,
    "apikey": _apikey,
    "reconcile": _reconcile,
    "sweep": _sweep,
    "token": _token,
    "config": _config,
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("orderfast")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without an install
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orderfast",
        description="orderfast: an HTTP order service (Starlette on Granian, a Rust core). Settings come from "
        "ORDERFAST_* environment variables: `orderfast config docs` lists them, `orderfast config show` shows "
        "those in force.",
        epilog="First steps: `orderfast migrate --seed-demo`, then `orderfast serve --demo --hint` (what "
        "`make run` does); the API is documented at /docs on the running server. `orderfast COMMAND --help` "
        "describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"orderfast {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API with Granian")
    serve.add_argument("--host", help="bind address (ORDERFAST_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (ORDERFAST_PORT, default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (ORDERFAST_WORKERS, default 1)")
    serve.add_argument("--backlog", type=int, default=4096, help="listen backlog (the kernel caps it at somaxconn)")
    serve.add_argument("--access-log", action="store_true", help="log every request (one JSON line each)")
    serve.add_argument("--hint", action="store_true", help="print how to make (and pay) a first order")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="the demo's defaults for what the environment leaves unset: the tax classes standard=20 and "
        "reduced=5.5, and a payment webhook secret generated in the data directory (make run uses it)",
    )

    grpc_serve = sub.add_parser("serve-grpc", help="serve the gRPC API (orderfast.v1.Orders; the grpc extra)")
    grpc_serve.add_argument("--host", help="bind address (ORDERFAST_HOST, default 127.0.0.1)")
    grpc_serve.add_argument("--port", type=int, default=50051, help="port (default 50051)")
    grpc_serve.add_argument("--workers", type=int, help="processes sharing the port (ORDERFAST_WORKERS, default 1)")
    grpc_serve.add_argument("--worker-process", action="store_true", help=argparse.SUPPRESS)

    worker = sub.add_parser("worker", help="run a background worker")
    worker_sub = worker.add_subparsers(dest="worker_command", required=True)
    worker_sub.add_parser(
        "temporal",
        help="the post-order saga on Temporal (ORDERFAST_TEMPORAL_ADDRESS; the temporal extra): starts a "
        "workflow per order from the outbox and expires unpaid orders in place of the sweeper",
    )

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--seed-demo", action="store_true", help="seed the demo catalog if empty")
    migrate.add_argument(
        "--check", action="store_true", help="apply nothing: exit 1 (saying so) when migrations are pending"
    )

    sweep = sub.add_parser("sweep", help="cancel unpaid orders older than ORDERFAST_PAYMENT_TIMEOUT")
    sweep.add_argument("--forever", action="store_true", help="keep sweeping every --interval seconds")
    sweep.add_argument(
        "--interval", type=float, help="seconds between sweeps (default: ORDERFAST_SWEEP_INTERVAL, when not 0)"
    )

    relay = sub.add_parser("relay", help="publish the outbox to Redis Streams (ORDERFAST_REDIS_URL)")
    relay_defaults = RelaySettings()
    relay.add_argument("--batch", type=int, default=relay_defaults.batch, help="events per claim")
    relay.add_argument("--once", action="store_true", help="publish what is due, then exit")
    relay.add_argument(
        "--lease",
        type=float,
        help="seconds a claimed batch stays reserved for this relay unless renewed (default: ORDERFAST_RELAY_LEASE)",
    )

    outbox = sub.add_parser("outbox", help="inspect and repair the outbox")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    dead = outbox_sub.add_parser("dead", help="list events that exhausted their publishing attempts")
    dead.add_argument("--limit", type=int, default=100)
    replay = outbox_sub.add_parser("replay", help="make a dead event publishable again")
    replay.add_argument("event_id")

    rec = sub.add_parser("reconcile", help="check orders, events, stock and the broker agree; exit 1 if not")
    rec.add_argument("--republish", action="store_true", help="queue events the broker lost for publishing")

    apikey = sub.add_parser("apikey", help="create, list and revoke API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a key (shown once)")
    create.add_argument("--role", action="append", required=True, choices=["service", "admin"])
    create.add_argument("--name", default="cli")
    apikey_sub.add_parser("list", help="list keys by prefix")
    revoke = apikey_sub.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix")

    config = sub.add_parser("config", help="the settings in force, or their documentation")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("show", help="every setting's value (secrets masked) and where it came from")
    config_sub.add_parser("docs", help="the configuration table of the README, from the declarations")

    token = sub.add_parser("token", help="mint a JWT for local use")
    token.add_argument("--sub", required=True, help="the subject: the customer id")
    token.add_argument("--role", action="append", help="a role (repeatable), e.g. admin")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default: ORDERFAST_JWT_MAX_LIFETIME)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        # Every command logs as the server does: one JSON object per line on stderr (what a command
        # prints for its user stays plain text on stdout).
        configure_logging(settings.log_level)
        COMMANDS[args.command](settings, args)
    except ConfigError as e:
        print(f"orderfast: configuration error: {e}", file=sys.stderr)
        return 2
    except StoreError as e:
        print(f"orderfast: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`orderfast apikey create | head -1`): what it read was printed;
        # point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
