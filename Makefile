# Needs only Python 3.11+ and make. `make run` and `make test` are all a new machine needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# The live board's browser test drives Debian's chromium through Playwright (a browser
# cannot be downloaded here, so Playwright's own is never installed).
CHROMIUM ?= /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint format openapi migrate seed bench-claims bench-rush bench-matching clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "microwish needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstalls whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

## Serve on http://$(HOST):$(PORT) with the SQLite default and the demo district.
run: $(VENV)/.installed
	$(BIN)/microwish migrate
	$(BIN)/microwish seed-demo
	$(BIN)/microwish serve --host $(HOST) --port $(PORT)

## Lint, type-check and run the whole suite (PostgreSQL too when MICROWISH_TEST_POSTGRES_URL is set),
## one pytest worker per core (each with its own databases and servers).
test: $(VENV)/.installed lint $(CHROMIUM)
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)


$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }

lint: $(VENV)/.installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy

format: $(VENV)/.installed
	$(BIN)/python -m ruff check --fix .
	$(BIN)/python -m ruff format .

## Regenerate the committed OpenAPI document.
openapi: $(VENV)/.installed
	$(BIN)/microwish openapi --output openapi/openapi.json

migrate: $(VENV)/.installed
	$(BIN)/microwish migrate

seed: $(VENV)/.installed
	$(BIN)/microwish seed-demo

## Benchmarks (print tables; see README "Performance").
bench-claims: $(VENV)/.installed
	$(BIN)/python bench/claims.py

bench-rush: $(VENV)/.installed
	$(BIN)/python bench/rush.py

bench-matching: $(VENV)/.installed
	$(BIN)/python bench/matching.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
