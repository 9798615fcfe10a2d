# The two newcomer commands are `make demo` and `make test`; everything else is a helper.
# Each target installs what it needs into .venv first (re-done when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test lint format unit integration e2e schema docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

## Start the embedded stack, send the shipped example events (and a few broken ones), show the outcome.
demo: $(STAMP)
	$(BIN)/touchstream demo $(ARGS)

## Start the embedded stack (broker, worker, API) in the foreground until Ctrl-C.
up: $(STAMP)
	$(BIN)/touchstream up $(ARGS)

## Lint, type-check and run the whole test suite (starts its own broker and PostgreSQL).
test: lint
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check services schemas tests bench
	$(BIN)/ruff format --check services schemas tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format services schemas tests bench
	$(BIN)/ruff check --fix services schemas tests bench

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(ARGS)

integration: $(STAMP)
	$(BIN)/pytest tests/integration $(ARGS)

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e $(ARGS)

## Regenerate the committed JSON Schema and the settings reference from the code.
schema docs: $(STAMP)
	$(BIN)/touchstream schema export --output schemas/jsonschema/touchpoint-v1.json
	$(BIN)/touchstream config docs --output docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
