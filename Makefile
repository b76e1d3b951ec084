# Two commands on a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test bench components lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[build,dev]'
	touch $(STAMP)

components: $(STAMP)
	$(BIN)/python examples/build_components.py

up: components
	$(BIN)/lattice up

test: components
	command -v redis-server >/dev/null && command -v openssl >/dev/null && command -v docker-registry >/dev/null && command -v htpasswd >/dev/null || (apt-get update && apt-get install -y redis-server openssl docker-registry apache2-utils)
	$(BIN)/python -m pytest -q

bench: components
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf build .state
