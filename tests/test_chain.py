"""The whole chain, headless through papermill, as a user runs it: `mlkit run` in a subprocess."""
import json, os, subprocess, sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

MLKIT = [str(Path(sys.executable).with_name("mlkit"))]


def mlkit(*args, cwd):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(MLKIT + list(args), cwd=cwd, capture_output=True, text=True, env=env, timeout=1200)


def load_run(out):
    return json.loads((Path(out) / "run.json").read_text())


def check_succeeded(r, out):
    assert r.returncode == 0, r.stderr[-3000:]
    rec = load_run(out)
    assert rec["status"] == "succeeded"
    from mlkit.stages import stage_names
    assert [s["name"] for s in rec["stages"]] == stage_names()
    for s in rec["stages"]:
        assert s["status"] == "succeeded" and s["seconds"] > 0
        nb = nbformat.read(Path(out) / s["notebook"], as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{s['name']} has no outputs"
    # one progress line per stage, with its time
    assert sum(1 for line in r.stderr.splitlines() if " ok " in line) == len(rec["stages"])
    return rec


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory):
    """`mlkit run` with no arguments, from an empty folder: the default problem."""
    cwd = tmp_path_factory.mktemp("empty")
    r = mlkit("run", cwd=cwd)
    runs = list((cwd / "runs").iterdir())
    assert len(runs) == 1, r.stderr
    return r, runs[0]


def test_default_chain_classifies_penguins(classification_run):
    r, out = classification_run
    rec = check_succeeded(r, out)
    assert rec["params"]["data"] == "penguins" and rec["params"]["target"] == "species"
    test = rec["metrics"]["test"]
    for m in ["accuracy", "balanced_accuracy", "f1_macro", "roc_auc"]:
        assert 0 <= test[m] <= 1, m
    assert test["accuracy"] > 0.9
    assert set(rec["metrics"]["validation"]) >= {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}
    assert {"python", "scikit-learn", "pandas", "papermill"} <= set(rec["versions"])
    # run.json is true to what happened: its test metrics are the ones stage 09 wrote
    written = json.loads((out / "metrics" / "test.json").read_text())
    assert written["metrics"] == test
    assert "test: accuracy" in r.stdout


def test_stage_outputs_are_in_the_run_folder(classification_run):
    _, out = classification_run
    from mlkit.runfolder import RunFolder
    run = RunFolder(out)
    for key in ["problem", "clean", "cleaning_log", "profile", "preprocessor", "feature_plan", "splits",
                "leaderboard", "chosen", "pipeline", "validation", "search_results", "tuned", "test", "model_card"]:
        assert run.exists(key), key
    clean = run.load_frame("clean")
    splits = run.load_frame("splits")
    assert len(splits) == len(clean)
    # the cleaned data loads back with the target's three species
    assert sorted(clean["species"].unique()) == ["Adelie", "Chinstrap", "Gentoo"]
    profile = run.file("profile").read_text()
    assert f"cleaned data (all {len(clean)} rows)" in profile and "random sample of" not in profile  # small data: whole
    assert list((out / "reports" / "figures").glob("*.png"))


def test_monitoring_results_are_in_the_run_folder(classification_run):
    """11_monitor writes its results under LAYOUT names; on the default problem week 2 calls for retraining."""
    _, out = classification_run
    from mlkit.runfolder import RunFolder
    run = RunFolder(out)
    assert run.exists("monitor") and run.exists("monitor_report") and run.load_json("monitor")["verdict"] == "retrain"
    for key in ["retrain_data", "new_test", "comparison"]:
        assert run.exists(key), key
    assert (run.require("candidate") / "model_card.md").exists()
    comparison = run.load_json("comparison")
    assert comparison["decision"] in ("promote", "keep current") and comparison["rows"] == len(run.load_frame("new_test"))


def test_regression_on_the_same_data(tmp_path):
    out = tmp_path / "reg"
    r = mlkit("run", "-p", "task", "regression", "-p", "target", "body_mass_g", "--out", str(out), cwd=tmp_path)
    rec = check_succeeded(r, out)
    test = rec["metrics"]["test"]
    assert {"rmse", "mae", "r2"} <= set(test)
    assert test["r2"] > 0.6 and test["rmse"] > 0


def test_own_csv_with_string_category_and_missing_values(tmp_path):
    """A user's own CSV as a German spreadsheet exports it (semicolons, decimal commas, Windows-1252), named by a
    relative path from the folder that holds it: the whole chain, and run.json says what was read."""
    rng = np.random.default_rng(0)
    n = 400
    colour = rng.choice(["rot", "grün", "blau"], n)
    size = rng.normal(10, 3, n)
    label = np.where(size + (colour == "rot") * 4 + rng.normal(0, 1, n) > 12, "groß", "klein")
    df = pd.DataFrame({"Farbe": colour, "Größe": size, "Gewicht": size * 2 + rng.normal(0, 1, n), "label": label})
    df.loc[rng.choice(n, 40, replace=False), "Größe"] = np.nan
    df.loc[rng.choice(n, 30, replace=False), "Farbe"] = None
    df.to_csv(tmp_path / "mine.csv", index=False, sep=";", decimal=",", encoding="cp1252")
    raw_bytes = (tmp_path / "mine.csv").read_bytes()
    r = mlkit("run", "-p", "data", "mine.csv", "-p", "target", "label", "-p", "success_threshold", "0.6",
              "--out", "mine", cwd=tmp_path)
    out = tmp_path / "mine"
    rec = check_succeeded(r, out)
    assert rec["params"]["success_threshold"] == 0.6
    assert rec["metrics"]["test"]["accuracy"] > 0.7
    assert (tmp_path / "mine.csv").read_bytes() == raw_bytes  # the raw data is never changed
    # run.json holds the absolute path and the content hash, so the run can be reproduced and its folder moved
    import hashlib
    assert rec["data"]["location"] == rec["params"]["data"] == str(tmp_path / "mine.csv")
    assert rec["data"]["sha256"] == hashlib.sha256(raw_bytes).hexdigest() and rec["data"]["rows"] == n
    log = json.loads((out / "reports" / "cleaning_log.json").read_text())
    read = " | ".join(e["detail"] for e in log if e["step"] == "read CSV")
    assert "cp1252" in read and "semicolon" in read and "decimal comma" in read
    plan = pd.read_csv(out / "reports" / "feature_plan.csv")
    assert plan.set_index("column").loc[["Farbe", "Größe", "Gewicht"], "role"].tolist() == ["categorical", "numeric", "numeric"]


def test_failed_stage_is_reported_and_resumable(tmp_path):
    from palmerpenguins import load_penguins
    load_penguins().to_csv(tmp_path / "birds.csv", index=False)
    out = tmp_path / "run"
    r = mlkit("run", "--out", str(out), "--to", "01_define", "-p", "data", "birds.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # a succeeded run is never overwritten
    r = mlkit("run", "--out", str(out), "--to", "01_define", cwd=tmp_path)
    assert r.returncode == 2 and "never overwrites a good result" in r.stderr
    # a stage whose inputs are missing is refused before any kernel starts, with the command that makes them
    (out / "problem.json").rename(out / "problem.json.bak")
    r = mlkit("run", "--out", str(out), "--from", "02_prepare", "--to", "02_prepare", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "02_prepare cannot start yet: 01_define has not run in run" in r.stderr
    assert "Run it too: mlkit run --out run --from 01_define --to 02_prepare" in r.stderr
    (out / "problem.json.bak").rename(out / "problem.json")
    # break the run: the data changes after 01_define read it, so stage 02 fails
    (tmp_path / "birds.csv").rename(tmp_path / "birds.csv.bak")
    load_penguins().head(300).to_csv(tmp_path / "birds.csv", index=False)
    r = mlkit("run", "--out", str(out), "--from", "02_prepare", "--to", "02_prepare", cwd=tmp_path)
    assert r.returncode == 1
    err = r.stderr
    assert "stage 02_prepare failed" in err
    assert "cell:" in err and "In [" in err
    assert "DataError: The data changed since this run first read it" in err
    assert "02_prepare.ipynb" in err
    assert "resume:   mlkit run --out run --from 02_prepare" in err  # relative to where it was run
    assert "Traceback" not in err
    rec = load_run(out)
    assert rec["status"] == "failed"
    assert [(s["name"], s["status"]) for s in rec["stages"]] == [("01_define", "succeeded"), ("02_prepare", "failed")]
    nb = nbformat.read(out / "02_prepare.ipynb", as_version=4)  # kept, with the failing cell marked
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    # mend and resume with the command it printed
    (tmp_path / "birds.csv.bak").replace(tmp_path / "birds.csv")
    r = mlkit("run", "--out", str(out), "--from", "02_prepare", "--to", "02_prepare", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rec = load_run(out)
    assert rec["status"] == "succeeded"
    assert [(s["name"], s["status"]) for s in rec["stages"]] == [("01_define", "succeeded"), ("02_prepare", "succeeded")]


def test_runs_in_this_python_whatever_kernelspecs_are_installed(tmp_path):
    """A user's broken `python3` kernelspec must not matter: the chain uses mlkit's own interpreter."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": ["/nonexistent/python", "-m", "ipykernel_launcher",
                                                           "-f", "{connection_file}"],
                                                  "display_name": "broken", "language": "python"}))
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter"), "MPLBACKEND": "Agg"}
    r = subprocess.run(MLKIT + ["run", "--out", str(tmp_path / "run"), "--to", "01_define"], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    nb = nbformat.read(tmp_path / "run" / "01_define.ipynb", as_version=4)
    # figures are rendered inline even though MPLBACKEND says Agg
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_templates_run_one_by_one_as_in_jupyterlab(tmp_path):
    """Opened from a folder and run top to bottom with their defaults, the templates share runs/interactive."""
    import papermill as pm
    from mlkit.runner import KERNEL_NAME, _Kernelspec
    from mlkit.stages import stage_names
    r = subprocess.run(MLKIT + ["templates", str(tmp_path / "nb")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with _Kernelspec():
        for stage in stage_names():
            pm.execute_notebook(str(tmp_path / "nb" / f"{stage}.ipynb"), str(tmp_path / "nb" / f"{stage}.ipynb"),
                                kernel_name=KERNEL_NAME, cwd=str(tmp_path / "nb"), progress_bar=False)
    run = tmp_path / "nb" / "runs" / "interactive"
    test = json.loads((run / "metrics" / "test.json").read_text())
    assert test["passed"] and test["metrics"]["accuracy"] > 0.9
    assert json.loads((run / "deploy.json").read_text())["deployed"] is True
    assert (run / "monitoring" / "monitor.json").exists()


def test_every_check_passes_and_nothing_on_the_page_looks_like_an_error(classification_run):
    """The default run executes every exercise's solution and check without error, and no cell of any stage shows a
    stderr stream (a red box in JupyterLab: a progress bar or a warning) or an error."""
    from mlkit.exercises import exercises
    _, out = classification_run
    rec = json.loads((out / "run.json").read_text())
    for s in rec["stages"]:
        nb = nbformat.read(out / s["notebook"], as_version=4)
        exs = exercises(nb, s["name"])
        assert exs, s["name"]
        for e in exs:
            check = nb.cells[e.check]
            assert check.execution_count is not None and not check.outputs, f"{e.grade_id}: {check.outputs}"
        red = [(i, o.get("name") or o.get("ename")) for i, c in enumerate(nb.cells) if c.cell_type == "code"
               for o in c.outputs if o.get("name") == "stderr" or o["output_type"] == "error"]
        assert red == [], f"{s['name']}: {red}"
