# Every target sets up (or reuses) the pinned virtual environment in .venv first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := conformance,peers,strict,dask,fast,dev

.PHONY: setup report differences test lint bench clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

## The main job: conformance report over every installed implementation x profile.
EXAMPLES ?= 5
report: $(STAMP)
	$(VENV)/bin/adamax-conformance --matrix --report-dir reports --examples $(EXAMPLES)

## Regenerate docs/differences.md from real runs of every installed peer.
differences: $(STAMP)
	$(PY) -m adamax_spec.conformance.differences docs/differences.md

## All tests (what CI runs).
test: $(STAMP)
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/adamax-bench

clean:
	rm -rf $(VENV) reports
