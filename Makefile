# Quick start: `make run` (train the default comparison) and `make test` (the whole suite).
# Both create .venv when it is missing and install the package into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test figures venv clean

run: $(STAMP)
	$(BIN)/lstm-vg run configs/adding.yaml --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The README's figures: plot what `make run` wrote (training it first if it is missing).
figures: $(STAMP)
	test -f results/adding/cell=lstm,seed=0/summary.json || $(MAKE) run
	$(BIN)/lstm-vg plot results/adding --out docs/images

venv: $(STAMP)

# Re-install when the dependency list changes; editable, so code edits need no re-install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache
