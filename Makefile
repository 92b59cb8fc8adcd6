# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_CLIENT := tests/mindar_client

ENV_FILE ?= .env

.PHONY: install run test lint node-deps clean env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)
	scripts/install-viewer-assets.sh

run: install
	$(BIN)/arv run

node-deps:
	scripts/install-node-deps.sh

test: install node-deps lint
	scripts/install-system-packages.sh
	scripts/test-services.sh
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src/arv
	$(BIN)/lint-imports

# The secrets docker-compose.yml reads, random, in $(ENV_FILE); an existing file is kept as it is.
env:
	$(PYTHON) scripts/generate-env.py $(ENV_FILE)

clean:
	rm -rf $(VENV) .arv .pytest_cache
