"""MLflow tracking against a real MLflow store (SQLite, in a temporary folder), read back with MLflow's own client.

MLflow is heavy (the `mlflow` extra), so these run in the side environment `.venv-mlflow` (`make tracking`); in the
kit's own environment they skip, saying so. Without a URI nothing imports mlflow, even where it is installed.
"""
import json, os, subprocess, sys
from pathlib import Path

import pytest

from conftest import FAST, fabricate_run

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed here; `make tracking` runs these in .venv-mlflow")
from mlkit.sweep import BOOT
MLKIT = [sys.executable, "-c", BOOT]  # `mlkit` with this Python: the side environment has no `mlkit` script of its own


def kit_env(**more):
    "The environment for `mlkit run` here: Jupyter's data files (nbconvert's templates) are the kit environment's."
    import nbconvert
    share = Path(nbconvert.__file__).resolve().parents[4] / "share" / "jupyter"  # <venv>/lib/pythonX.Y/site-packages/nbconvert
    return {**os.environ, "JUPYTER_PATH": os.pathsep.join(filter(None, [str(share), os.environ.get("JUPYTER_PATH")])), **more}


@pytest.fixture
def store(tmp_path, monkeypatch):
    "A fresh MLflow store: SQLite, its artifacts beside it; the tracking URI."
    monkeypatch.chdir(tmp_path)  # MLflow keeps a SQLite store's artifacts under ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def runs_of(uri):
    from mlflow.tracking import MlflowClient
    c = MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name("mlkit")
    return c, c.search_runs([exp.experiment_id]) if exp else []


def test_nothing_imports_mlflow_without_a_uri(tmp_path):
    code = ("import sys, os; os.environ.pop('MLFLOW_TRACKING_URI', None)\n"
            "import mlkit.cli, mlkit.runner, mlkit.sweep, mlkit.tracking\n"
            "from mlkit.tracking import tracking_uri\n"
            "assert tracking_uri() is None\n"
            "assert 'mlflow' not in sys.modules, 'mlflow imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_mlkit_run_logs_the_run_with_track(tmp_path, store):
    out = tmp_path / "run"
    args = [a for n, v in FAST.items() for a in ("-p", n, json.dumps(v))]
    r = subprocess.run([*MLKIT, "run", "--out", str(out), "--track", store, *args], capture_output=True, text=True,
                       cwd=tmp_path, timeout=900, env=kit_env())
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "run.json").read_text())
    client, found = runs_of(store)
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["candidates"] == "linear,tree" and run.data.params["n_iter"] == "3"
    assert run.data.metrics["test.balanced_accuracy"] == pytest.approx(rec["metrics"]["test"]["balanced_accuracy"])
    assert run.data.metrics["validation.accuracy"] == pytest.approx(rec["metrics"]["validation"]["accuracy"])
    assert run.data.metrics["seconds.05_select"] == pytest.approx(rec["stages"][4]["seconds"])
    assert run.data.tags["mlkit.stage.05_select"] == rec["stages"][4]["status"]
    assert run.data.tags["mlkit.data_sha256"] == rec["data"]["sha256"]
    assert run.data.tags["mlkit.version"] == rec["versions"]["mlkit"]
    assert run.data.tags["mlkit.run_dir"] == str(out)
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "model_card.md", "notebooks"} <= arts, arts
    nbs = {a.path for a in client.list_artifacts(run.info.run_id, "notebooks")}
    assert "notebooks/09_test.ipynb" in nbs and len(nbs) == 11


def test_the_variable_logs_too_and_a_failed_run_is_logged_failed(tmp_path, store):
    out = tmp_path / "run"
    env = kit_env(MLFLOW_TRACKING_URI=store)
    args = [a for n, v in {**FAST, "candidates": "linear"}.items() for a in ("-p", n, json.dumps(v))]
    r = subprocess.run([*MLKIT, "run", "--out", str(out), "--to", "05_select", *args], env=env, capture_output=True,
                       text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr
    (out / "run.json").write_text(json.dumps({**json.loads((out / "run.json").read_text()), "status": "failed"}))
    from mlkit.tracking import log_run
    log_run(out, store)
    _, found = runs_of(store)
    assert sorted(r.info.status for r in found) == ["FAILED", "FINISHED"]


def test_a_sweep_is_a_parent_run_with_its_variants_nested(tmp_path, store):
    sweep = tmp_path / "sweep"
    variants = []
    for i, vid in enumerate(["aaaaaaaaaa", "bbbbbbbbbb"]):
        run = fabricate_run(sweep / vid, passed=i == 0)
        (run.path / "run.json").write_text(json.dumps({
            "status": "succeeded", "run_dir": str(run.path), "params": {"n_iter": 2 + i, "candidates": "linear"},
            "data": {"sha256": "ab" * 32}, "versions": {"mlkit": "0.test"},
            "stages": [{"name": "05_select", "status": "succeeded", "seconds": 1.5}],
            "metrics": {"test": json.loads((run.path / "metrics" / "test.json").read_text())["metrics"]}}))
        variants.append({"id": vid, "label": f"n_iter={2 + i}", "run_dir": str(run.path), "status": "succeeded"})
    (sweep / "sweep.json").write_text(json.dumps({"status": "succeeded", "grid": str(tmp_path / "grid.yaml"),
                                                  "varying": ["n_iter"], "fixed": {"candidates": "linear"},
                                                  "variants": variants}))
    from mlkit.tracking import log_sweep
    ids = log_sweep(sweep, store)
    client, found = runs_of(store)
    assert len(found) == 3
    parent = next(r for r in found if r.info.run_id == ids["sweep"])
    assert parent.info.run_name == "sweep sweep" and parent.data.params == {"candidates": "linear"}
    assert parent.data.tags["mlkit.varying"] == "n_iter"
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") == ids["sweep"]]
    assert sorted(r.data.params["n_iter"] for r in children) == ["2", "3"]
    assert sorted(r.info.run_name for r in children) == ["aaaaaaaaaa", "bbbbbbbbbb"]
    assert all("test.balanced_accuracy" in r.data.metrics for r in children)
