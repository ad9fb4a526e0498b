# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run serve test lint bench screenshots clean

install: $(STAMP)

# Reinstall whenever the pins or the project's metadata change.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/dispatch-server --db ./dispatch.db serve

serve: install
	$(BIN)/dispatch-server --db ./dispatch.db serve

lint: install
	$(BIN)/ruff check dispatch server tests bench
	$(BIN)/ruff format --check dispatch server tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
