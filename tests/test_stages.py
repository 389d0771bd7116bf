"""The stage glue as a user meets it: templates found in the installed package, and a stage opened out of order."""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).parents[1]


def test_templates_come_from_the_installed_package():
    """In this editable install, `mlkit.templates` resolves to the repository's one templates folder."""
    from mlkit.stages import templates_dir, stage_names
    assert templates_dir() == ROOT / "templates"
    assert stage_names() == sorted(p.stem for p in (ROOT / "templates").glob("[0-9][0-9]_*.ipynb"))


def test_a_stage_opened_out_of_order_says_what_to_run_first(tmp_path):
    """05_select in a fresh folder stops in its first cell with one message: every stage it needs, and the command."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    fresh, out = tmp_path / "runs" / "interactive", tmp_path / "05_select.ipynb"
    with pytest.raises(PapermillExecutionError) as e:
        pm.execute_notebook(str(ROOT / "templates" / "05_select.ipynb"), str(out), parameters={"run_dir": "runs/interactive"},
                            kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert e.value.ename == "StageError"
    msg = e.value.evalue
    assert msg.startswith("05_select needs the results of 01_define, 02_prepare, 03_features and 04_split, "
                          f"which are not in {fresh} (missing: problem.json,"), msg
    assert "in JupyterLab, open each and run all its cells" in msg
    assert msg.endswith(f"or from a terminal: `mlkit run --out {fresh} --to 04_split`."), msg
    nb = nbformat.read(out, as_version=4)
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1
    (i, error), = errors
    assert "ready_for(\"05_select\")" in nb.cells[i].source  # the first cell after the parameters, before any work
    assert error.traceback == [f"StageError: {msg}"]  # the message alone: no library traceback
    assert not fresh.exists()  # and nothing was written
