# ArchCast: `make serve` (create the environment, start the service) and `make test` (run the test suite).
VENV ?= .venv
PYTHON ?= python3

.PHONY: serve test lint

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e ".[train,dev]"
	touch $@ $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(VENV)/bin/archcast serve

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest
