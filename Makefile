# `make run` starts the broker, `make test` runs every test; both create .venv on first use.
# `make install` only creates .venv with leveret in it: `. .venv/bin/activate` then puts the
# `leveret` command on the PATH. `make run` installs leveret alone (its runtime dependencies);
# `make test`, `make lint` and `make codegen` add the test and dev tools (.[test,dev]).
# Installing compiles the hot path in place with mypyc where a C compiler is installed (a
# minute or two, once; LEVERET_COMPILE=0 skips it; see setup.py and leveret/build.py), else
# leveret runs as pure Python. `make run` and `make test` recompile compiled modules whose
# sources were edited since; `make clean-compiled` goes back to pure Python and `make compile`
# compiles again. `.venv/bin/leveret version` says which build is in place.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.installed-runtime
TOOLS := $(VENV)/.installed-tools

.PHONY: install run test lint codegen bench clean compile clean-compiled fresh

$(RUNTIME): pyproject.toml
	@echo "creating $(VENV) and installing leveret in it (first run only; where a C compiler" \
	      "is installed this compiles the hot path, a minute or two)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@$(PY) -m leveret version
	@touch $@

# (LEVERET_COMPILE=0: the compiled modules the runtime install left in place stay; this
# install only adds the tools, it need not compile them again)
$(TOOLS): $(RUNTIME)
	@echo "installing the test and dev tools in $(VENV) (first run only)..."
	LEVERET_COMPILE=0 $(PY) -m pip install --quiet -e '.[test,dev]'
	@touch $@

install: $(RUNTIME)
	@echo "leveret is installed in $(VENV): '. $(VENV)/bin/activate' puts the leveret command on your PATH"

# Compiled modules older than their sources would run the old code: compile them again
# (leveret/build.py; nothing to do for a pure-Python checkout).
fresh: $(RUNTIME)
	@$(PY) -m leveret.build --refresh

run: $(RUNTIME) fresh
	@echo "(in another shell: '. $(VENV)/bin/activate', then 'leveret --help')"
	$(PY) -m leveret serve --data-dir ./data

test: $(TOOLS) fresh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(TOOLS)
	$(PY) -m ruff check src tests tools
	$(PY) -m mypy

codegen: $(TOOLS)
	$(PY) tools/codegen.py

compile: $(RUNTIME)
	$(PY) -m pip install --quiet 'setuptools>=77' wheel 'mypy>=1.15'
	LEVERET_COMPILE=require $(PY) setup.py --quiet build_ext --inplace
	$(PY) -m leveret version

clean-compiled:
	rm -rf build
	find src -name '*.so' -delete
	@echo "pure Python again (the compiled modules of 'make compile' are removed)"

clean: clean-compiled
	rm -rf $(VENV) data .pytest_cache
