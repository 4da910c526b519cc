# syntax=docker/dockerfile:1
# orderfast's container image: the Rust core is compiled in a build stage, the runtime stage has
# Python, the orderfast wheel and its runtime dependencies only — no compiler, no Rust, no tests.
#
#   docker build -t orderfast .            (or: podman build -t orderfast .)
#   docker run --read-only -p 8000:8000 \
#       -e ORDERFAST_DATABASE_URL=postgresql://… -e ORDERFAST_JWT_SECRET=… orderfast
#   make image                             (podman, on a Debian base made here: tests/ship/build_image.sh)
#
# Size budget: the runtime image, base included, stays under 200 MB (189 MB on the Debian base
# `make image` makes: 126 MB of Debian and Python, 63 MB of orderfast and its dependencies);
# tests/ship/test_image.py checks it.
#
# BASE_IMAGE and BUILDER_IMAGE must be Debian trixie (the build stage takes Rust from Debian's
# `cargo-web`) with the same Python 3.11+ in both (the wheel is built for the builder's Python, which
# the runtime stage runs). `python3` and `python3 -m venv` must work in both.
ARG BASE_IMAGE=docker.io/library/python:3.13-slim-trixie
ARG BUILDER_IMAGE=docker.io/library/python:3.13-slim-trixie

# -- build: the wheel ---------------------------------------------------------------------------
FROM ${BUILDER_IMAGE} AS build
# cargo-web/rustc-web: the current Rust Debian keeps for its stable release (1.96 in trixie) —
# trixie's `cargo` (1.85) is older than Cargo.lock needs (uuid 1.29 wants 1.89). Versions are not pinned: a Debian stable release only moves by security and
# point-release updates, and a pinned version disappears from the mirror when it is replaced.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cargo-web gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
ARG MATURIN_VERSION=1.16.0
RUN python3 -m venv /opt/maturin \
    && /opt/maturin/bin/pip install --no-cache-dir --only-binary=:all: "maturin==${MATURIN_VERSION}"
WORKDIR /src
# The core first, compiled with placeholders for the Python sources and README.md: a layer that
# outlives every change outside rust/ and the Cargo files — the wheel's build below finds it fresh
# and only packages.
COPY Cargo.toml Cargo.lock pyproject.toml LICENSE ./
COPY rust ./rust
RUN --mount=type=cache,target=/root/.cargo/registry \
    mkdir -p python/orderfast \
    && touch python/orderfast/__init__.py README.md \
    && /opt/maturin/bin/maturin build --release --locked --interpreter python3 --out /tmp/core \
    && rm -rf python README.md /tmp/core
COPY python ./python
COPY README.md ./
RUN --mount=type=cache,target=/root/.cargo/registry \
    /opt/maturin/bin/maturin build --release --locked --interpreter python3 --out /wheels

# -- venv: the wheel and its runtime dependencies, installed where the runtime stage runs them ------
FROM ${BASE_IMAGE} AS venv
# The dependencies first, from pyproject.toml's list alone: a layer that outlives source changes.
# Binary wheels only: the base has no compiler, and a dependency that needed one would be a surprise.
# Then out go Swagger UI's editor bundles and source maps (about 20 MB: orderfast serves
# swagger-ui-bundle.js, swagger-ui.css and a favicon — http/openapi.py reads them at start-up, the
# smoke test fetches them) and the top-level `test` package swagger-ui-py's wheel installs (its own
# test suite).
# EXTRAS (comma-separated optional features of pyproject.toml, e.g. `--build-arg EXTRAS=grpc,temporal`)
# adds theirs: `grpc` for `orderfast serve-grpc`, `temporal` for `orderfast worker temporal`. The
# default image has none (the size budget above is for it; with both extras: 262 MB, budget 300 MB;
# tests/ship/test_image.py builds both).
COPY pyproject.toml /tmp/pyproject.toml
ARG EXTRAS=""
RUN python3 -m venv /opt/orderfast \
    && python3 -c 'import os, tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; print(*p["dependencies"], *(d for e in filter(None, os.environ["EXTRAS"].split(",")) for d in p["optional-dependencies"][e.strip()]), sep="\n")' \
        > /tmp/requirements.txt \
    && /opt/orderfast/bin/pip install --no-cache-dir --only-binary=:all: --requirement /tmp/requirements.txt \
    && site="$(/opt/orderfast/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf "$site"/swagger_ui/static/swagger-editor* "$site"/swagger_ui/static/*.map "$site/test"
# The venv keeps no pip: nothing installs at run time.
COPY --from=build /wheels /wheels
RUN /opt/orderfast/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
    && /opt/orderfast/bin/pip check \
    && /opt/orderfast/bin/pip uninstall --yes --quiet pip \
    && /opt/orderfast/bin/orderfast --version

# -- strip: debug info out of the extension modules (about 35 MB), with the build stage's binutils ---
# orderfast's core keeps its symbol table (py-spy --native shows function names; the line tables
# Cargo.toml keeps for local profiling go); the dependencies' symbols go too.
FROM build AS strip
COPY --from=venv /opt/orderfast /opt/orderfast
RUN find /opt/orderfast -name '*.so' -not -path '*/orderfast/_core.*' -exec strip --strip-unneeded {} + \
    && find /opt/orderfast -path '*/orderfast/_core.*.so' -exec strip --strip-debug {} +

# -- runtime --------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="orderfast" \
      org.opencontainers.image.description="HTTP order service: Starlette on Granian with a compiled Rust core" \
      org.opencontainers.image.licenses="MIT" \
      io.orderfast.user="10001:10001" \
      io.orderfast.writable-paths="/var/lib/orderfast /tmp" \
      io.orderfast.env="ORDERFAST_DATABASE_URL ORDERFAST_JWT_SECRET(_FILE) ORDERFAST_REDIS_URL ORDERFAST_WORKERS; all: orderfast config docs"

# A fixed uid/gid, so a read-only root, volume ownership and Kubernetes' runAsUser agree.
RUN groupadd --gid 10001 orderfast \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/orderfast --no-create-home \
        --shell /usr/sbin/nologin orderfast \
    && mkdir -p /var/lib/orderfast \
    && chown 10001:10001 /var/lib/orderfast \
    && chmod 0700 /var/lib/orderfast
COPY --from=strip /opt/orderfast /opt/orderfast

# Settings are ORDERFAST_* variables (`orderfast config docs` lists them all). Set at run time:
#   ORDERFAST_DATABASE_URL   postgresql://… (unset: SQLite in $ORDERFAST_DATA_DIR, one instance only)
#   ORDERFAST_JWT_SECRET     or ORDERFAST_JWT_SECRET_FILE / _JWT_PUBLIC_KEYS / _JWT_JWKS_FILE; unset, a
#                            development secret is generated in the data dir (not for production)
#   ORDERFAST_REDIS_URL      shared rate limits and the relay's streams (optional)
#   ORDERFAST_WORKERS        Granian worker processes (default 1)
# Set here: listen on every interface (the default, 127.0.0.1, is unreachable from outside a
# container), and keep data in the one writable directory. .pyc files are compiled at install time;
# the root filesystem may be read-only, so Python must not try to write more.
ENV PATH="/opt/orderfast/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ORDERFAST_HOST=0.0.0.0 \
    ORDERFAST_PORT=8000 \
    ORDERFAST_DATA_DIR=/var/lib/orderfast

# The writable paths under a read-only root filesystem (docker run --read-only, Kubernetes
# readOnlyRootFilesystem: mount an emptyDir on each): the data dir (the SQLite store and the
# development JWT secret) and /tmp.
VOLUME ["/var/lib/orderfast", "/tmp"]
USER 10001:10001
WORKDIR /var/lib/orderfast
EXPOSE 8000
# Exec form: orderfast (Granian's main process) is PID 1 and receives SIGTERM itself: it stops
# gracefully and reaps its workers. No HEALTHCHECK: orchestrators probe /livez, /readyz and
# /startupz on port 8000 themselves.
ENTRYPOINT ["orderfast"]
CMD ["serve"]
