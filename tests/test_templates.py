"""The templates as documents: one parameters cell each, no outputs, lessons as well as programs."""
import ast, json, re, shutil, subprocess, sys, filecmp
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parents[1]
TEMPLATES = sorted((ROOT / "templates").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["01_define", "02_prepare", "03_features", "04_split", "05_select", "06_train",
            "07_evaluate", "08_tune", "09_test", "10_deploy", "11_monitor"]
# each stage of the seed workflow, as a word its template's title or text must carry
SEED = {"01_define": "problem", "02_prepare": "clean", "03_features": "feature", "04_split": "split",
        "05_select": "model", "06_train": "train", "07_evaluate": "evaluat", "08_tune": "hyperparameter",
        "09_test": "test", "10_deploy": "deploy", "11_monitor": "monitor"}
PARAM_LINE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*): (?P<type>[^=]+?) = (?P<value>.+?)  # (?P<help>\S.*)$")


def test_the_eleven_stages_are_there():
    assert [p.stem for p in TEMPLATES] == EXPECTED


@pytest.fixture(params=TEMPLATES, ids=lambda p: p.stem)
def nb(request):
    return request.param.stem, nbformat.read(request.param, as_version=4)


def test_one_parameters_cell_in_papermill_form(nb):
    stage, nb = nb
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{stage}: {len(cells)} parameters cells"
    names = []
    for line in cells[0].source.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = PARAM_LINE.match(line)
        assert m, f"{stage}: parameter line not `name: type = value  # help`: {line!r}"
        names.append(m["name"])
    assert "run_dir" in names
    # no later cell reassigns a parameter
    after = nb.cells[nb.cells.index(cells[0]) + 1:]
    for c in after:
        if c.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(c.source)):
            targets = [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else getattr(node, "targets", [])
            for t in targets:
                for n in ast.walk(t):
                    assert not (isinstance(n, ast.Name) and n.id in names), f"{stage} reassigns parameter {n.id!r}"


def test_committed_clean_with_a_kernelspec(nb):
    stage, nb = nb
    assert nb.metadata.get("kernelspec", {}).get("language") == "python", stage
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{stage} carries outputs"


def test_a_lesson_as_well_as_a_program(nb):
    stage, nb = nb
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {stage[:2]} "), stage
    prose = " ".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    assert SEED[stage] in prose, f"{stage} does not speak of {SEED[stage]!r}"
    n_md = sum(c.cell_type == "markdown" for c in nb.cells)
    n_code = sum(c.cell_type == "code" for c in nb.cells)
    assert n_md >= 3 and n_md >= n_code / 3, f"{stage}: {n_md} markdown cells for {n_code} code cells"
    for c in nb.cells:
        if c.cell_type == "code":
            assert len(c.source.splitlines()) <= 30, f"{stage}: a cell of {len(c.source.splitlines())} lines"
            assert "import *" not in c.source


def test_library_is_in_sync_with_its_notebooks(tmp_path):
    """`nbdev-export` must leave mlkit/ unchanged."""
    for name in ["notebooks", "mlkit"]:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    exporter = Path(sys.executable).with_name("nbdev-export")
    subprocess.run([str(exporter)], cwd=tmp_path, check=True, capture_output=True)
    for f in sorted((ROOT / "mlkit").glob("*.py")):
        assert filecmp.cmp(f, tmp_path / "mlkit" / f.name, shallow=False), f"mlkit/{f.name} differs from its notebook"
    made = {p.name for p in (tmp_path / "mlkit").glob("*.py")}
    assert made == {p.name for p in (ROOT / "mlkit").glob("*.py")}


def test_nbdev_clean_keeps_the_exercises(tmp_path):
    """Cleaning the templates as before a commit (`nbdev-clean`) leaves every exercise's markers and check cells intact."""
    from mlkit.exercises import exercises, solution_lines
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    subprocess.run([str(Path(sys.executable).with_name("nbdev-clean")), "--fname", "templates"], cwd=tmp_path, check=True,
                   capture_output=True)
    for p in TEMPLATES:
        before, after = nbformat.read(p, as_version=4), nbformat.read(tmp_path / "templates" / p.name, as_version=4)
        assert exercises(before, p.stem), f"{p.stem} has no exercise"
        assert exercises(after, p.stem) == exercises(before, p.stem), p.stem
        assert solution_lines(after, p.stem) == solution_lines(before, p.stem), p.stem
        assert [c.source for c in after.cells] == [c.source for c in before.cells], p.stem
