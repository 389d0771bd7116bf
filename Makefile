# Two commands do everything: `make run` (the whole chain on the default problem) and
# `make test` (library notebooks + test suite). Both create .venv and install the kit on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlkit-installed

EVENV  := .venv-evidently
MVENV  := .venv-mlflow
GVENV  := .venv-nbgrader
LAB    ?= workshop/student

# The test files run side by side, one worker per core (pytest-xdist), each file whole on one worker: most of a test's
# time is a kernel executing a notebook on one core. `make test PYTEST_ARGS=-n0` runs them one after another.
PYTEST_ARGS ?= -n auto --dist loadfile

.PHONY: install run test docs crosscheck tracking grading lab bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mlkit run $(ARGS)

# The library notebooks' tests run as they build the documentation (tools/build_docs.py runs every cell the way
# nbdev-test does and fails on a failing one), so the pages in _docs/ can never rot.
test: $(STAMP) $(EVENV)/.installed $(MVENV)/.installed $(GVENV)/.installed
	$(BIN)/python tools/build_docs.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory crosscheck
	$(MAKE) --no-print-directory tracking
	$(MAKE) --no-print-directory grading

# Evidently is a test-only reference for our drift tests. It brings ~35 packages (uvloop among
# them, which uvicorn would pick up), so it lives in its own environment layered on .venv
# rather than in the kit's; the cross-check runs there.
$(EVENV)/.installed: $(STAMP)
	test -x $(EVENV)/bin/python || $(PYTHON) -m venv $(EVENV)
	$(EVENV)/bin/python -c "import site, sys; open(site.getsitepackages()[0] + '/mlkit-venv.pth', 'w').write('import site; site.addsitedir(%r)\n' % sys.argv[1])" "$$($(BIN)/python -c 'import site; print(site.getsitepackages()[0])')"
	$(EVENV)/bin/python -m pip install --quiet "evidently>=0.7,<0.8"
	touch $@

crosscheck: $(EVENV)/.installed
	$(EVENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_monitor.py -k evidently

# MLflow (the `mlflow` extra) brings ~40 packages (Flask, gunicorn, alembic, the Databricks SDK, OpenTelemetry,
# a pyarrow of its own; ~330 MB, ~75 s to install), so its test runs in a side environment layered on .venv,
# as the Evidently cross-check does; the kit's own environment, and its users without the extra, never see it.
$(MVENV)/.installed: $(STAMP)
	test -x $(MVENV)/bin/python || $(PYTHON) -m venv $(MVENV)
	$(MVENV)/bin/python -c "import site, sys; open(site.getsitepackages()[0] + '/mlkit-venv.pth', 'w').write('import site; site.addsitedir(%r)\n' % sys.argv[1])" "$$($(BIN)/python -c 'import site; print(site.getsitepackages()[0])')"
	$(MVENV)/bin/python -m pip install --quiet "mlflow>=3,<4"
	touch $@

tracking: $(MVENV)/.installed
	$(MVENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_tracking.py

# nbgrader (~20 packages: its gradebook's SQLAlchemy/alembic, nbconvert's extras) is a test-only reference for the
# workshop's copies: its own metadata validator and `nbgrader generate_assignment` read them. Like Evidently, it lives
# in a side environment layered on .venv.
$(GVENV)/.installed: $(STAMP)
	test -x $(GVENV)/bin/python || $(PYTHON) -m venv $(GVENV)
	$(GVENV)/bin/python -c "import site, sys; open(site.getsitepackages()[0] + '/mlkit-venv.pth', 'w').write('import site; site.addsitedir(%r)\n' % sys.argv[1])" "$$($(BIN)/python -c 'import site; print(site.getsitepackages()[0])')"
	$(GVENV)/bin/python -m pip install --quiet "nbgrader>=0.9,<0.10"
	touch $@

grading: $(GVENV)/.installed
	$(GVENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_workshop.py -k nbgrader_validates

# JupyterLab on a folder of notebooks, with the kit's kernel (this .venv's Python, whatever kernels are installed
# elsewhere). `make lab` opens workshop/student, writing that workshop first (`mlkit workshop workshop`) if it is not
# there; `make lab LAB=templates` or `LAB=path/to/a/workshop/student` opens another folder.
lab: $(STAMP)
	test -e "$(LAB)" || test "$(LAB)" != workshop/student || $(BIN)/mlkit workshop workshop $(ARGS)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mlkit)" >/dev/null
	JUPYTER_PATH="$(abspath $(VENV))/share/jupyter" $(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) "$(LAB)"

docs: $(STAMP)
	$(BIN)/python tools/build_docs.py

bench: $(STAMP)
	$(BIN)/python bench/bench_chain.py
	$(BIN)/python bench/bench_service.py
	$(BIN)/python bench/bench_predict.py
	$(BIN)/python bench/bench_monitor.py
	$(BIN)/python bench/bench_cache.py
	$(BIN)/python bench/bench_sweep.py
	$(BIN)/python bench/bench_exercises.py

clean:
	rm -rf runs build dist *.egg-info $(EVENV) $(MVENV) $(GVENV)
