# `make run` starts the broker, `make test` runs every test; both create .venv on first use.
# `make install` only creates .venv with leveret in it: `. .venv/bin/activate` then puts the
# `leveret` command on the PATH. `make run` installs leveret alone (its runtime dependencies);
# `make test`, `make lint` and `make codegen` add the test and dev tools (.[test,dev]).
# `make compile` compiles the hot path in place with mypyc (needs a C compiler; see setup.py
# and leveret/build.py); `make clean-compiled` goes back to pure Python. `make test` runs
# whichever build is in place (`.venv/bin/leveret version` says which).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.installed-runtime
TOOLS := $(VENV)/.installed-tools

.PHONY: install run test lint codegen bench clean compile clean-compiled

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

compile: $(TOOLS)
	$(PY) -m pip install --quiet 'setuptools>=77' wheel
	LEVERET_COMPILE=require $(PY) setup.py --quiet build_ext --inplace
	$(PY) -m leveret version

clean-compiled:
	rm -rf build
	find src -name '*.so' -delete
	@echo "pure Python again (the compiled modules of 'make compile' are removed)"

clean: clean-compiled
	rm -rf $(VENV) data .pytest_cache
