# Cairn: the two commands of the README are `make up` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Superset has an environment of its own (it pins SQLAlchemy 1.4 and pandas 2.1).
SUPERSET_VENV := .venv-superset

.PHONY: setup setup-superset setup-tutor up test test-unit test-integration test-e2e services browser lock lock-superset clean

## setup: create .venv with the pinned dependencies and Cairn (editable)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Cairn needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

## setup-superset: create .venv-superset with the pinned Superset (about 4 minutes the first time)
setup-superset: $(SUPERSET_VENV)/.installed

$(SUPERSET_VENV)/.installed: requirements-superset.lock
	$(PYTHON) -m venv $(SUPERSET_VENV)
	$(SUPERSET_VENV)/bin/pip install --quiet --upgrade pip
	$(SUPERSET_VENV)/bin/pip install --quiet -r requirements-superset.lock
	touch $@

## setup-tutor: .venv-tutor (Tutor 22.0.3, the offline validators, the cairnlake plugin) for the plugin's tests
setup-tutor:
	./scripts/setup-tutor-env.sh

## browser: Debian's chromium and chromium-driver for the browser tests (Playwright drives /usr/bin/chromium)
browser:
	./scripts/ensure-browser.sh

## services: start MariaDB (the tests' Open edX MySQL) when it is not running
services:
	./scripts/ensure-services.sh

## up: the whole stack on the embedded engine, in ./.cairn, with Superset on http://127.0.0.1:8088
up: setup setup-superset services
	$(BIN)/cairn up --demo

## test: every test: the fast unit layer, the integration layer against real chDB and MariaDB,
## then the end-to-end layer (cairn up with Superset, in headless Chromium)
test: setup setup-superset setup-tutor services browser
	$(BIN)/pytest

## test-unit: the fast layer only (no chDB, no MariaDB)
test-unit: setup
	$(BIN)/pytest tests/unit

## test-integration: the integration layer only
test-integration: setup setup-tutor services
	$(BIN)/pytest tests/integration

## test-e2e: the end-to-end layer only (Superset and Chromium)
test-e2e: setup setup-superset services browser
	$(BIN)/pytest tests/e2e

## lock: re-pin requirements.lock from the current .venv (after changing pyproject.toml)
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^cairn' > requirements.lock

## lock-superset: re-pin requirements-superset.lock from the current .venv-superset
lock-superset:
	$(SUPERSET_VENV)/bin/pip freeze > requirements-superset.lock

clean:
	rm -rf $(VENV) $(SUPERSET_VENV) .venv-tutor .pytest_cache .hypothesis
