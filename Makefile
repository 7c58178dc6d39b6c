# The two commands: `make run` sets everything up and starts labnotebook on the
# default store with example runs; `make test` runs every check and test.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install frontend browser lint typecheck pytest bench clean

run: install frontend
	$(BIN)/python examples/train.py
	$(BIN)/labnotebook ls
	$(BIN)/labnotebook serve

test: install frontend browser lint typecheck pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The dashboard, built into src/labnotebook/static/ (skipped when up to date).
frontend:
	scripts/build-frontend

# Debian's Chromium, for the browser tests and the dashboard benchmark.
browser:
	scripts/ensure-chromium

lint: install
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/ruff check src tests benchmarks examples
	cd frontend && npx prettier --check . && npx vue-tsc --noEmit && npm test --silent

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -n 2 --dist loadfile -q

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) frontend/node_modules src/labnotebook/static
