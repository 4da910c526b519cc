# orderfast — `make help` lists the targets.
SHELL := /bin/bash
# A failing step fails its recipe even when its output is filtered through a pipe.
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

# Builds are stamped: a step runs when its inputs changed, and says what it does when it runs
# (the release build takes about a minute); a no-op `make run` or `make test` prints nothing of it.
SOURCES := $(shell find rust -name '*.rs') Cargo.toml Cargo.lock pyproject.toml
RUNTIME := $(VENV)/.orderfast-runtime
DEV := $(VENV)/.orderfast-dev

$(BIN)/maturin:
	@echo "==> creating $(VENV) with maturin"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'maturin>=1.8,<2'

$(RUNTIME): $(BIN)/maturin $(SOURCES)
	@echo "==> building the Rust core (release, about a minute) and installing orderfast's runtime dependencies"
	$(BIN)/maturin develop --release -q 2>&1 | { grep -vE "Requirement already satisfied|^Ignoring .*: markers" || true; }
	@$(BIN)/python -c "import orderfast._core"
	@touch $@

$(DEV): $(RUNTIME) pyproject.toml
	@echo "==> installing the test, lint and benchmark tools (pyproject.toml: [project.optional-dependencies] dev)"
	$(BIN)/python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']))" > $(VENV)/dev-requirements.txt
	$(BIN)/pip install -q -r $(VENV)/dev-requirements.txt
	@touch $@

build: $(DEV) ## build the Rust extension (release) into .venv with the dev tools

run: $(RUNTIME) ## serve on 127.0.0.1:8000 (PORT=N for another) on the embedded SQLite store (no PostgreSQL or Redis)
	$(BIN)/orderfast migrate --seed-demo
	$(BIN)/orderfast serve --port $(PORT) --demo --hint

test: build ## build, then run every test suite (cargo and pytest)
	cargo test --quiet
	$(BIN)/pytest -q

PROTO := python/orderfast/rpc/v1/orders.proto
proto: $(DEV) ## regenerate the gRPC modules from $(PROTO) (grpcio-tools, pinned in pyproject.toml)
	$(BIN)/python -m grpc_tools.protoc -Ipython --python_out=python --pyi_out=python --grpc_python_out=python $(PROTO)

lint: build ## ruff, mypy --strict, stubtest of _core.pyi, rustfmt and clippy
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest orderfast._core
	cargo fmt --check
	cargo clippy --quiet --all-targets -- -D warnings
	cargo clippy --quiet --features python -- -D warnings

fmt: ## format Rust and Python
	cargo fmt
	$(BIN)/ruff format python tests bench
	$(BIN)/ruff check --fix python tests bench

bench-tools: build
	$(BIN)/pip install -q 'matplotlib>=3.8'
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
	@command -v pgbench >/dev/null || { echo "pgbench is missing: apt-get install postgresql-contrib" >&2; exit 1; }

bench: bench-tools ## core micro-benchmarks, then the full load harness (~15 min; bench/results/)
	$(BIN)/pytest bench -q --benchmark-enable --benchmark-columns=min,median,mean,ops,rounds
	$(BIN)/python bench/harness.py

bench-quick: bench-tools ## the load harness in under 2 minutes (short single runs, fewer scenarios)
	$(BIN)/python bench/harness.py --quick

profile: build ## py-spy --native flame graphs under load: quote (SQLite), create-order (PostgreSQL) in bench/results/
	$(BIN)/python bench/profile.py
	$(BIN)/python bench/profile.py --scenario create --store postgres --connections 64

image: ## build the container image with podman (localhost/orderfast:dev; no registry needed: tests/ship/build_image.sh)
	bash tests/ship/build_image.sh

clean: ## remove build outputs and local data
	rm -rf target .orderfast .pytest_cache .mypy_cache .ruff_cache python/orderfast/*.so $(RUNTIME) $(DEV)

.PHONY: help build run test proto lint fmt bench bench-tools bench-quick profile image clean
