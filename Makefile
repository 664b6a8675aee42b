# The README's commands. Each target sets itself up first (`setup` is incremental).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
VENV_BIN  := $(VENV)/bin
STAMP     := $(VENV)/.installed
AZURITE   := node_modules/.bin/azurite
# python3.11 (pinned runtime of the app), else python3 (checked to be >= 3.11).
PYTHON    ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

# Tests start their own Azurite from here.
export AZURITE_BIN := $(CURDIR)/$(AZURITE)

.PHONY: help setup test run bench chromium

help:
	@echo "make run    start Azurite and the function app on http://127.0.0.1:7071 (Ctrl-C stops both)"
	@echo "make test   ruff, mypy and pytest (tests start their own Azurite)"
	@echo "make bench  run every bench/*.py"
	@echo "make setup  create .venv and node_modules (the targets above do it themselves)"

setup: $(STAMP) $(AZURITE)

$(VENV)/pyvenv.cfg:
	@test -n "$(PYTHON)" || { echo "python3.11 (or python3 >= 3.11) not found" >&2; exit 1; }
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "$(PYTHON) is older than 3.11" >&2; exit 1; }
	"$(PYTHON)" -m venv $(VENV)

# Reinstall when a requirements file or a tool's metadata is newer than the last install.
$(STAMP): $(VENV)/pyvenv.cfg requirements.txt requirements-dev.txt tools/funchost/pyproject.toml \
		tools/pubsub/pyproject.toml
	$(VENV_BIN)/python -m pip install -r requirements-dev.txt -e tools/funchost -e tools/pubsub
	@touch $@

# npm ci replaces node_modules; touching the (linked) script marks the install as done.
$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The browser tests (tests/e2e/conftest.py launches it) drive Debian's chromium, or CHROMIUM_BIN.
chromium:
	@if [ -n "$$CHROMIUM_BIN" ]; then test -x "$$CHROMIUM_BIN"; else scripts/install-chromium.sh; fi

test: setup chromium
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/mypy
	$(VENV_BIN)/pytest

run: setup
	scripts/run.sh

bench: setup
	@shopt -s nullglob; found=0; \
	for f in bench/[!_]*.py; do \
		found=1; echo "== $$f"; \
		PYTHONPATH="$(CURDIR)" $(VENV_BIN)/python "$$f" || exit 1; \
	done; \
	[ $$found = 1 ] || echo "no benchmarks in bench/ yet"
