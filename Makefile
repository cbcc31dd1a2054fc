# Cairn: the two commands of the README are `make up` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup up test test-unit test-integration services lock clean

## setup: create .venv with the pinned dependencies and Cairn (editable)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Cairn needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

## services: start MariaDB (the tests' Open edX MySQL) when it is not running
services:
	./scripts/ensure-services.sh

## up: the whole stack on the embedded engine, in ./.cairn
up: setup services
	$(BIN)/cairn up --demo

## test: every test: the fast unit layer, then the integration layer against real chDB and MariaDB
test: setup services
	$(BIN)/pytest

## test-unit: the fast layer only (no chDB, no MariaDB)
test-unit: setup
	$(BIN)/pytest tests/unit

## test-integration: the integration layer only
test-integration: setup services
	$(BIN)/pytest tests/integration

## lock: re-pin requirements.lock from the current .venv (after changing pyproject.toml)
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^cairn' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
