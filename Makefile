# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run serve test lint bench soak screenshots clean

install: $(STAMP)

# Reinstall whenever the pins or the project's metadata change.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

# The main job: an embedded server, an outage burst and the dispatcher's board, from one command.
run: install
	$(BIN)/dispatch demo

# The headless server on ./dispatch.db (create tokens with `dispatch-server --db dispatch.db token create`).
serve: install
	$(BIN)/dispatch-server --db ./dispatch.db serve

screenshots: install
	$(BIN)/python scripts/screenshots.py

lint: install
	$(BIN)/ruff check dispatch server tests bench scripts
	$(BIN)/ruff format --check dispatch server tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two workers (pytest-xdist): most tests wait on a server, so two share the CI machine's two cores well.
test: install lint
	$(BIN)/pytest -q -n 2

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/board.py
	$(BIN)/python bench/allocation.py
	$(BIN)/python bench/fairness.py
	$(BIN)/python bench/forecast.py

# Half an hour of steady load, reporting memory, files and latency every 30 s (bench/soak.py --help).
soak: install
	$(BIN)/python bench/soak.py --minutes 30

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
