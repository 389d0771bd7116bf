# Two commands do everything: `make run` (the whole chain on the default problem) and
# `make test` (library notebooks + test suite). Both create .venv and install the kit on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlkit-installed

.PHONY: install run test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mlkit run $(ARGS)

test: $(STAMP)
	$(BIN)/nbdev-test --n-workers 2
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_chain.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_monitor.py

clean:
	rm -rf runs build dist *.egg-info
