# Keymoment developer commands. `make dev` runs everything; `make test` tests everything.
# Both create .venv and install what they need on a fresh machine.
# Test levels (pytest markers, set by directory in tests/conftest.py): unit = neither
# `integration` nor `e2e`; every level starts what it needs on free ports.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: dev test test-unit test-integration test-e2e bench install system-deps lock clean help

help:
	@echo "make dev    - run the whole system locally (broker, PostgreSQL, SMTP sink, four services)"
	@echo "make test   - run the whole test suite (starts its own broker and PostgreSQL)"
	@echo "make test-unit | test-integration | test-e2e - one level of it"
	@echo "make bench  - run the benchmarks; figures go to bench/results/"
	@echo "make lock   - refresh constraints.txt from the current environment"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency declarations change.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Binaries the tests drive for real: Prometheus/promtool (rules, scrapes),
# Chromium (kiosk and survey browser tests) with fonts-noto-cjk (Chinese glyphs in its screenshots) and
# Node.js/npm (custom-resource schema validation, the kiosk's face drawing). Debian packages; installed once if missing.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

dev: install
	$(BIN)/keymoment dev

test: install system-deps
	$(BIN)/python -m pytest -q

test-unit: install system-deps
	$(BIN)/python -m pytest -q -m 'not integration and not e2e'

test-integration: install system-deps
	$(BIN)/python -m pytest -q -m integration

test-e2e: install
	$(BIN)/python -m pytest -q -m e2e

bench: install system-deps
	$(BIN)/python -m bench

lock: $(BIN)/python
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
