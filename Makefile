# edgecount: the two commands a newcomer runs are `make demo` and `make test`.
# Both create the virtual environment in .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the dependency list changes.
RUNTIME_STAMP := $(VENV)/.stamp-runtime
DEV_STAMP     := $(VENV)/.stamp-dev

.PHONY: demo console test lint typecheck unit bench bench-smoke clean mosquitto system-tools venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $@ $(RUNTIME_STAMP)

venv: $(RUNTIME_STAMP)

## demo: run the whole pipeline on the embedded defaults and print the result
demo: $(RUNTIME_STAMP)
	$(BIN)/edgecount demo

## console: serve the operator console on the last demo's night (after make demo)
console: $(RUNTIME_STAMP)
	@test -f .edgecount-demo/console.yaml || { echo "run make demo first"; exit 2; }
	$(BIN)/edgecount reconcile console -c .edgecount-demo/console.yaml

## system-tools: the programs the tests run (mosquitto, openssl, systemd-analyze, chromium), via apt-get
system-tools:
	@missing=""; \
	{ command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto; } || missing="$$missing mosquitto"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

mosquitto: system-tools

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP) system-tools
	PATH="$$PATH:/usr/sbin" $(BIN)/python -m pytest

## test: install what tests need, then lint, type-check and run the whole suite
test: lint typecheck unit

bench: $(DEV_STAMP)
	$(BIN)/python bench/rfid_throughput.py

## bench-smoke: every benchmark once with tiny sizes (does each still run?), a few minutes
bench-smoke: $(DEV_STAMP)
	PY=$(BIN)/python bench/smoke.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
