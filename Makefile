# The two newcomer commands are `make demo` and `make test`; everything else is a helper.
# Each target installs what it needs into .venv first (re-done when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test lint format unit integration e2e schema docs clean postgres-server chromium docker-compose

$(STAMP): pyproject.toml
	@echo "Installing Touchstream and its dependencies into $(VENV) (log: $(VENV)/install.log) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@( $(BIN)/python -m pip install --upgrade "pip>=24" \
	   && $(BIN)/python -m pip install -e '.[dev]' ) > $(VENV)/install.log 2>&1 \
	  || { tail -40 $(VENV)/install.log; echo "install failed; full log: $(VENV)/install.log" >&2; exit 1; }
	@touch $@

## Start the embedded stack, send the shipped example events (and a few broken ones), show the outcome.
demo: $(STAMP)
	$(BIN)/touchstream demo $(ARGS)

## Start the embedded stack (broker, worker, API) in the foreground until Ctrl-C.
up: $(STAMP)
	$(BIN)/touchstream up $(ARGS)

## Lint, type-check and run the whole test suite (starts its own broker and PostgreSQL).
## TEST_PROCESSES test processes run side by side (pytest-xdist), each with its own broker
## and PostgreSQL; most tests wait on processes they started, so there are more than cores.
TEST_PROCESSES ?= 4
test: lint postgres-server chromium docker-compose
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadgroup $(ARGS)

## The tests start a throwaway PostgreSQL cluster from the server binaries (initdb, pg_ctl).
## Missing ones are installed when we may (root with apt-get); otherwise we say what to do.
postgres-server:
	@if [ -n "$$TOUCHSTREAM_TEST_DATABASE_URL" ] || command -v initdb >/dev/null \
	    || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing the PostgreSQL server for the tests (apt-get install postgresql)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
	    echo "The tests need PostgreSQL server binaries (initdb, pg_ctl): install PostgreSQL 15+" \
	         "(Debian: sudo apt-get install postgresql), or set TOUCHSTREAM_TEST_DATABASE_URL." >&2; \
	    exit 1; \
	fi

## The dashboard's browser test drives the system Chromium through Playwright (Playwright's
## own browser download is not used). Installed when we may (root with apt-get); otherwise
## we say what to do. TOUCHSTREAM_CHROMIUM may name another Chromium binary.
chromium:
	@if [ -n "$$TOUCHSTREAM_CHROMIUM" ] || command -v chromium >/dev/null \
	    || command -v chromium-browser >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Chromium for the dashboard's browser test (apt-get install chromium)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	    echo "The dashboard's browser test needs Chromium: install it" \
	         "(Debian: sudo apt-get install chromium), or set TOUCHSTREAM_CHROMIUM to a Chromium binary." >&2; \
	    exit 1; \
	fi

## The deployment tests check docker-compose.yml with `docker-compose config` (no Docker engine
## needed). Installed when we may (root with apt-get); otherwise we say what to do.
docker-compose:
	@if command -v docker-compose >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing docker-compose for the deployment tests (apt-get install docker-compose)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; \
	else \
	    echo "The deployment tests need docker-compose to check docker-compose.yml: install it" \
	         "(Debian: sudo apt-get install docker-compose)." >&2; \
	    exit 1; \
	fi

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

e2e: $(STAMP) chromium
	$(BIN)/pytest tests/e2e $(ARGS)

## Regenerate the committed JSON Schema and the settings reference from the code.
schema docs: $(STAMP)
	$(BIN)/touchstream schema export --output schemas/jsonschema/touchpoint-v1.json
	$(BIN)/touchstream config docs --output docs/configuration.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
