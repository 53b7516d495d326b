# `make run` starts the broker, `make test` runs every test; both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint codegen bench clean

$(STAMP): pyproject.toml
	@echo "creating $(VENV) and installing leveret with its test tools (first run only)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m leveret serve --data-dir ./data

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests tools
	$(PY) -m mypy

codegen: $(STAMP)
	$(PY) tools/codegen.py

clean:
	rm -rf $(VENV) data .pytest_cache
