# pesarail — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PORT ?= 8000
export PESARAIL_HOME ?= $(CURDIR)/.pesarail

# Find a Python >= 3.12 without anything installed by hand: python3.13, python3.12,
# then any pyenv-installed 3.13/3.12, then python3 if it is new enough.
define find_python
for c in python3.13 python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[3-9]*/bin/python3 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3 2>/dev/null | sort -rV) python3; do \
  if command -v "$$c" >/dev/null 2>&1 && "$$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then \
    command -v "$$c"; exit 0; \
  fi; \
done; exit 1
endef
PYTHON_BIN := $(shell $(find_python))

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv browser bench demo test test-sqlite test-postgres lint typecheck schemathesis clean

help:
	@echo "make demo    # create the environment, migrate, start web + worker + sandbox, print URLs and a demo key"
	@echo "make test    # create the environment and run the whole suite (SQLite)"
	@echo "make test-postgres  # the suite against PostgreSQL (DATABASE_URL or the local server)"
	@echo "make lint typecheck schemathesis"
	@echo "make bench   # benchmarks S0-S4 on local PostgreSQL (SCENARIO=S3 BENCH_SECONDS=10); docs/performance.md"

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON_BIN)" ]; then echo "error: no Python >= 3.12 found (tried python3.13, python3.12, pyenv, python3)" >&2; exit 1; fi
	@echo "using $(PYTHON_BIN) ($$($(PYTHON_BIN) --version))"
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Browser tests drive Debian's Chromium (Playwright never downloads a browser).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "warning: chromium not found and cannot be installed here (need root + apt-get)" >&2; \
	  fi; \
	fi

demo: $(STAMP)
	$(VENV)/bin/pesarail demo --port $(PORT)

test: $(STAMP) browser
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

test-sqlite: test

test-postgres: $(STAMP) browser
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pesarail} $(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check pesarail tests $$(test -d bench && echo bench)

typecheck: $(STAMP)
	$(VENV)/bin/mypy $$(for d in common api tenants ledger wallets providers payments checkout sandbox_phone; do test -d pesarail/$$d && echo pesarail/$$d; done)

schemathesis: $(STAMP)
	$(VENV)/bin/pytest -q tests/api/test_schemathesis.py

SCENARIO ?= all
BENCH_SECONDS ?= 10

bench: $(STAMP)
	$(VENV)/bin/python -m bench.run $(SCENARIO) --seconds $(BENCH_SECONDS)

clean:
	rm -rf $(VENV) .pesarail .pytest_cache .mypy_cache .ruff_cache
