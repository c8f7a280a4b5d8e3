# Two commands on a fresh clone: `make run` and `make test`. Both create .venv; `make run`
# installs only what serving needs, `make test` adds the `test` extras (pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test
CATALOGS := $(wildcard llavero/console/locale/*/LC_MESSAGES/messages.po)
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c constraints.txt

.PHONY: run test lint typecheck unit install install-serve catalogs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The install compiles the verify hot path with mypyc (setup.py): built again when the core
# or the fast path changes, else the extensions would run the old code
# (tests/core/test_compiled.py tells).
INSTALL_INPUTS := $(BIN)/python pyproject.toml constraints.txt setup.py \
	$(wildcard llavero/core/*.py) llavero/api/fast_verify.py

$(SERVE_STAMP): $(INSTALL_INPUTS)
	$(PIP_INSTALL) -e .
	touch $(SERVE_STAMP)

# The test install holds all that serving needs, so it stands for both: one compile, not two.
$(TEST_STAMP): $(INSTALL_INPUTS)
	$(PIP_INSTALL) -e '.[test]'
	touch $(SERVE_STAMP) $(TEST_STAMP)

# What serving needs, and nothing of the test toolchain.
install-serve: $(SERVE_STAMP) catalogs

# Everything: what serving needs plus the test extras (pytest, ruff, mypy, Playwright…).
install: $(TEST_STAMP) catalogs

# gettext catalogs: the .po files are in the repo, the .mo files are built here.
catalogs: $(SERVE_STAMP)
	@if [ -n "$(CATALOGS)" ]; then $(BIN)/pybabel -q compile -d llavero/console/locale -D messages; fi

run: install-serve
	$(BIN)/llavero serve

lint: install
	$(BIN)/ruff check llavero tests bench scripts
	$(BIN)/ruff format --check llavero tests bench scripts

typecheck: install
	$(BIN)/mypy

# The tests run on PYTEST_WORKERS pytest-xdist workers, each file's tests on one worker (many
# files start their servers or browser once per module); PYTEST_WORKERS=0 runs them one after
# another in one process. One worker per core: with more, a loaded 2-core machine timed out
# page loads and proxied requests that pass alone (README.md, "Running the tests").
PYTEST_WORKERS ?= 2

unit: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

# Lint, type check and the tests in a sub-make, so that the wall time printed at the end covers
# all three, and is printed when one of them fails too.
test:
	@start=$$(date +%s); $(MAKE) --no-print-directory lint typecheck unit; status=$$?; \
	echo "make test: $$(($$(date +%s) - start)) s wall time"; exit $$status

# Benchmarks need wrk (Debian package) and peers in their own venv: bench/README.md.
bench:
	sh bench/setup.sh
	.venv-bench/bin/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
