# Every target sets up (or reuses) the pinned virtual environment in .venv first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := conformance,peers,strict,dask,fast,dev

.PHONY: setup report differences deep test lint bench clean

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

## Deep runs: TRAJECTORIES generated trajectories per installed target under its own profile,
## continued across sittings (--resume) in docs/deep-runs/, the summaries kept as evidence.
TRAJECTORIES ?= 10000
deep: $(STAMP)
	$(PY) -m adamax_spec.conformance.deep --resume --trajectories $(TRAJECTORIES) --out docs/deep-runs
	$(PY) -m adamax_spec.conformance.deep --summarize --out docs/deep-runs

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
