# `make run` starts the broker, `make test` runs every test; both create .venv on first use.
# `make install` only creates .venv with leveret in it: `. .venv/bin/activate` then puts the
# `leveret` command on the PATH. `make run` installs leveret alone (its runtime dependencies);
# `make test`, `make lint` and `make codegen` add the test and dev tools (.[test,dev]).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.installed-runtime
TOOLS := $(VENV)/.installed-tools

.PHONY: install run test lint codegen bench clean

$(RUNTIME): pyproject.toml
	@echo "creating $(VENV) and installing leveret in it (first run only)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(TOOLS): $(RUNTIME)
	@echo "installing the test and dev tools in $(VENV) (first run only)..."
	$(PY) -m pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(RUNTIME)
	@echo "leveret is installed in $(VENV): '. $(VENV)/bin/activate' puts the leveret command on your PATH"

run: $(RUNTIME)
	@echo "(in another shell: '. $(VENV)/bin/activate', then 'leveret --help')"
	$(PY) -m leveret serve --data-dir ./data

test: $(TOOLS)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(TOOLS)
	$(PY) -m ruff check src tests tools
	$(PY) -m mypy

codegen: $(TOOLS)
	$(PY) tools/codegen.py

clean:
	rm -rf $(VENV) data .pytest_cache
