# Every target sets up (or reuses) the pinned virtual environment in .venv first.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := conformance,peers,strict,dask,fast,dev

.PHONY: setup report differences deep test soak lint bench clean

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
	$(PY) -m adamax_spec.conformance.evidence.deep --resume --trajectories $(TRAJECTORIES) --out docs/deep-runs
	$(PY) -m adamax_spec.conformance.evidence.deep --summarize --out docs/deep-runs

## Regenerate docs/differences.md from real runs of every installed peer.
differences: $(STAMP)
	$(PY) -m adamax_spec.conformance.evidence.differences docs/differences.md

## All tests (what CI runs).
test: $(STAMP)
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

## Soak: the whole test suite SOAK_RUNS times, each with a fresh random hypothesis seed (the
## `dev` profile, as a contributor's `make test` without CI); stops at the first failing run and
## prints the command that repeats it. SOAK_ARGS narrows it (e.g. SOAK_ARGS="-m hypothesis").
SOAK_RUNS ?= 20
SOAK_ARGS ?=
soak: $(STAMP)
	@for i in $$(seq $(SOAK_RUNS)); do \
	  seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	  echo "soak run $$i/$(SOAK_RUNS): hypothesis seed $$seed"; \
	  HYPOTHESIS_PROFILE=dev $(PY) -m pytest -q -p no:randomly --hypothesis-seed=$$seed $(SOAK_ARGS) \
	    || { echo "soak: run $$i failed; repeat it with: HYPOTHESIS_PROFILE=dev $(PY) -m pytest --hypothesis-seed=$$seed $(SOAK_ARGS)"; exit 1; }; \
	done; echo "soak: $(SOAK_RUNS) runs passed"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/adamax-bench

clean:
	rm -rf $(VENV) reports
