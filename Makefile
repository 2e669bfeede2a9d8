# Quick start: `make run` (train the default comparison) and `make test` (the whole suite).
# Both create .venv when it is missing and install the package into it.
PYTHON ?= python3
SHELL  := /bin/bash
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench figures reproduce venv clean

run: $(STAMP)
	$(BIN)/lstm-vg run configs/adding.yaml --overwrite

# The suite in 2 worker processes (pytest-xdist), each test file on one of them, so module-scoped
# fixtures run once: CI's 2 cores. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

# Training speed against PyTorch (installed from the `bench` extra; with tcmalloc too where Debian's
# libtcmalloc-minimal4 is installed) on the reference workloads and every built-in cell at W1;
# docs/performance.md keeps the latest table. Minutes; run it on an otherwise idle machine.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	cd benchmarks && ../$(BIN)/python bench.py --zoo --json ../results/bench.json

# The README's figures: plot what `make run` wrote (training it first if it is missing).
figures: $(STAMP)
	test -f results/adding/cell=lstm,seed=0/summary.json || $(MAKE) run
	$(BIN)/lstm-vg plot results/adding --out docs/images

# The full experiments behind docs/reproductions.md (hours on a CPU; finished runs are reused):
# results/reproduced/<experiment>/ gets the runs, report.md, report.html (one page: table, claims,
# figures, configs), the figures and the claims' verdicts.
EXPERIMENTS ?= $(wildcard experiments/*.yaml)
reproduce: $(STAMP)
	@for file in $(EXPERIMENTS); do \
	  name=$$(basename $$file .yaml); folder=results/reproduced/$$name; \
	  $(BIN)/lstm-vg reproduce $$file --out results/reproduced | tee /tmp/lstm-vg-claims.txt; \
	  status=$${PIPESTATUS[0]}; [ $$status -le 1 ] || exit $$status; \
	  cp /tmp/lstm-vg-claims.txt $$folder/claims.txt; \
	  $(BIN)/lstm-vg report $$folder > $$folder/report.md || exit 1; \
	  $(BIN)/lstm-vg report $$folder --format html --out $$folder/report.html || exit 1; \
	  $(BIN)/lstm-vg plot $$folder || exit 1; \
	done

venv: $(STAMP)

# Re-install when the dependency list changes; editable, so code edits need no re-install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache
