# Two commands on a fresh clone: `make run` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CATALOGS := $(wildcard llavero/console/locale/*/LC_MESSAGES/messages.po)

.PHONY: run test lint typecheck unit install catalogs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP) catalogs

# gettext catalogs: the .po files are in the repo, the .mo files are built here.
catalogs: $(STAMP)
	@if [ -n "$(CATALOGS)" ]; then $(BIN)/pybabel -q compile -d llavero/console/locale -D messages; fi

run: install
	$(BIN)/llavero serve

lint: install
	$(BIN)/ruff check llavero tests bench scripts
	$(BIN)/ruff format --check llavero tests bench scripts

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest

test: lint typecheck unit

# Benchmarks need wrk (Debian package) and peers in their own venv: bench/README.md.
bench:
	sh bench/setup.sh
	.venv-bench/bin/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
