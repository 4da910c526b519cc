# orderfast — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

$(BIN)/maturin:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'maturin>=1.8,<2'

build: $(BIN)/maturin ## build the Rust extension (release) into .venv with the dev tools
	$(BIN)/maturin develop --release -q --extras dev

run: build ## serve on 127.0.0.1:8000 (PORT=N for another) on the embedded SQLite store (no PostgreSQL or Redis)
	$(BIN)/orderfast migrate --seed-demo
	$(BIN)/orderfast serve --port $(PORT) --hint

test: build ## build, then run every test suite (cargo and pytest)
	cargo test --quiet
	$(BIN)/pytest -q

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

clean: ## remove build outputs and local data
	rm -rf target .orderfast .pytest_cache .mypy_cache .ruff_cache python/orderfast/*.so

.PHONY: help build run test lint fmt bench bench-tools bench-quick profile clean
