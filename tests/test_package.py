"""The model package: what it holds, loading it (fresh process, other sklearn versions, tampering), batch scoring,
and the 10_deploy template that builds it from a run folder (or stops at its gate)."""
from __future__ import annotations
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import sklearn
from palmerpenguins import load_penguins
from conftest import fabricate_run
from mlkit.core import DataError, ModelPackageError, ParameterError, SchemaError
from mlkit.package import FILES, build_package, fingerprint, load_package
from mlkit.batch import predict_file

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]


def test_metadata_describes_the_model(clf_package):
    meta = json.loads((clf_package / "metadata.json").read_text())
    assert sorted(p.name for p in clf_package.iterdir()) == sorted(FILES.values())
    assert (meta["task"], meta["target"], meta["classes"]) == ("classification", "species", ["Adelie", "Chinstrap", "Gentoo"])
    cols = {c["name"]: c for c in meta["schema"]["columns"]}
    assert list(cols) == FEATURES
    assert cols["island"]["kind"] == "text" and cols["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert cols["island"]["unseen"] == "flag"  # the one-hot encoder ignores unknown categories
    assert cols["bill_length_mm"]["kind"] == "number" and 30 < cols["bill_length_mm"]["min"] < cols["bill_length_mm"]["max"] < 60
    assert all(c["nullable"] for c in cols.values())  # the pipeline imputes every column
    assert set(meta["metrics"]) >= {"validation", "test"}
    assert set(meta["metrics"]["test"]) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}
    assert meta["versions"]["sklearn"] == sklearn.__version__
    assert set(meta["versions"]) == {"python", "sklearn", "skops", "pandas", "numpy", "mlkit"}
    assert len(meta["training_data"]["fingerprint"]) == 64 and meta["training_data"]["rows"] == meta["reference"]["rows"]
    assert meta["model_version"].endswith(meta["files"]["model"]["sha256"][:8])
    example = meta["input_example"]
    assert [list(r) for r in example] == [FEATURES]  # one made-up record of typical values, no real row
    assert example[0]["bill_length_mm"] == pytest.approx(load_penguins()["bill_length_mm"].median(), rel=0.05)
    card = (clf_package / "model_card.md").read_text()
    assert "## Package" in card and meta["model_version"] in card and "`island`" in card


def test_reference_holds_training_rows_and_predictions(clf_package):
    pkg = load_package(clf_package)
    ref = pkg.reference()
    assert list(ref.columns) == FEATURES + ["species", "prediction"]
    assert len(ref) == pkg.metadata["training_data"]["rows"]
    np.testing.assert_array_equal(ref["prediction"].to_numpy(), pkg.pipeline.predict(ref[FEATURES]))
    assert fingerprint(ref[FEATURES], ref["species"]) == pkg.metadata["training_data"]["fingerprint"]
    assert (ref["prediction"] == ref["species"]).mean() > 0.9


def test_fingerprint_changes_with_the_data(penguins):
    X = penguins.drop(columns="species")
    assert fingerprint(X, penguins.species) == fingerprint(X.copy(), penguins.species.copy())
    changed = X.copy(); changed.loc[0, "bill_length_mm"] += 0.1
    assert fingerprint(changed, penguins.species) != fingerprint(X, penguins.species)


def test_loads_in_a_fresh_process_with_identical_predictions(clf_package, penguins, tmp_path):
    X = penguins.drop(columns="species")
    here = load_package(clf_package).predict(X)
    code = ("import sys, pandas as pd; from mlkit.package import load_package; "
            "X = pd.read_parquet(sys.argv[2]); load_package(sys.argv[1]).predict(X).to_parquet(sys.argv[3])")
    X.to_parquet(tmp_path / "X.parquet")
    subprocess.run([sys.executable, "-c", code, str(clf_package), str(tmp_path / "X.parquet"), str(tmp_path / "y.parquet")],
                   check=True, timeout=120)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "y.parquet"), here, check_exact=True)


def test_package_from_another_sklearn_version_is_refused(clf_package, tmp_path):
    other = Path(shutil.copytree(clf_package, tmp_path / "model"))
    meta = json.loads((other / "metadata.json").read_text())
    meta["versions"]["sklearn"] = "1.3.2"
    (other / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelPackageError) as e:
        load_package(other)
    msg = str(e.value)
    assert "built with scikit-learn 1.3.2" in msg and sklearn.__version__ in msg and "scikit-learn==1.3.2" in msg


def test_replaced_or_missing_files_are_refused(clf_package, tmp_path):
    swapped = Path(shutil.copytree(clf_package, tmp_path / "swapped"))
    (swapped / "model.skops").write_bytes((swapped / "model.skops").read_bytes() + b"\0")
    with pytest.raises(ModelPackageError, match="SHA-256 differs"): load_package(swapped)
    partial = Path(shutil.copytree(clf_package, tmp_path / "partial"))
    (partial / "metadata.json").unlink()
    with pytest.raises(ModelPackageError, match="metadata.json missing"): load_package(partial)
    with pytest.raises(ModelPackageError, match="No model package at"): load_package(tmp_path / "nowhere")


def test_predict_matches_by_name_and_flags_unseen_categories(clf_package, penguins):
    pkg = load_package(clf_package)
    X = penguins.drop(columns="species").head(10)
    shuffled = pkg.predict(X[X.columns[::-1]])
    assert list(shuffled.columns) == ["prediction", "proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]
    assert shuffled.prediction.tolist() == pkg.pipeline.predict(X).tolist()
    np.testing.assert_allclose(shuffled.filter(like="proba_").sum(axis=1), 1.0)
    odd = pkg.predict(X.assign(island=["Atlantis"] + X.island.tolist()[1:]))
    assert [(w["field"], w["issue"], w["records"]) for w in odd.attrs["warnings"]] == [("island", "unseen_category", [0])]


@pytest.mark.parametrize("change, message", [
    (lambda X: X.drop(columns="sex"), "lacks the column(s) 'sex'"),
    (lambda X: X.assign(colour="red"), "does not know: 'colour'"),
    (lambda X: X.assign(body_mass_g=["heavy"] + X.body_mass_g.tolist()[1:]), "Column 'body_mass_g' must hold numbers but holds text"),
    (lambda X: X.assign(year=True), "Column 'year' must hold numbers but holds true/false"),
    (lambda X: X.head(0), "no rows"),
])
def test_predict_refuses_bad_frames(clf_package, penguins, change, message):
    with pytest.raises((SchemaError, DataError)) as e:
        load_package(clf_package).predict(change(penguins.drop(columns="species").head(5)))
    assert message in str(e.value)


def test_regression_package(reg_package, penguins):
    pkg = load_package(reg_package)
    assert (pkg.task, pkg.target, pkg.classes) == ("regression", "body_mass_g", None)
    assert "species" in pkg.schema.names and "body_mass_g" not in pkg.schema.names
    X = penguins.dropna(subset=["body_mass_g"]).drop(columns="body_mass_g").head(20)
    pred = pkg.predict(X)
    assert list(pred.columns) == ["prediction"]
    assert pred.prediction.between(2000, 7000).all()
    assert set(pkg.metadata["metrics"]["test"]) == {"rmse", "mae", "r2"}


@pytest.mark.parametrize("src, dst", [("csv", "csv"), ("parquet", "parquet"), ("csv", "parquet")])
def test_predict_file(clf_package, penguins, tmp_path, src, dst):
    X = penguins.drop(columns="species").head(30)
    inp = tmp_path / f"new.{src}"
    X.to_csv(inp, index=False) if src == "csv" else X.to_parquet(inp, index=False)
    out = predict_file(clf_package, inp, tmp_path / "scored" / f"out.{dst}")
    scored = pd.read_csv(out) if dst == "csv" else pd.read_parquet(out)
    assert list(scored.columns) == FEATURES + ["prediction", "proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]
    assert scored.prediction.tolist() == load_package(clf_package).pipeline.predict(X).tolist()
    assert not list(tmp_path.glob("scored/*.tmp"))


def test_predict_file_bad_input(clf_package, penguins, tmp_path, caplog):
    X = penguins.drop(columns="species").head(5)
    X.assign(flipper_length_mm=["long", 1, 2, 3, 4]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SchemaError, match="Column 'flipper_length_mm' must hold numbers but holds text: 1 row"):
        predict_file(clf_package, tmp_path / "bad.csv", tmp_path / "out.csv")
    penguins.head(5).to_csv(tmp_path / "with_target.csv", index=False)
    with pytest.raises(SchemaError, match="does not know: 'species'"):
        predict_file(clf_package, tmp_path / "with_target.csv", tmp_path / "out.csv")
    kept = pd.read_csv(predict_file(clf_package, tmp_path / "with_target.csv", tmp_path / "out.csv", extra="keep"))
    assert kept.species.tolist() == penguins.species.head(5).tolist()
    with pytest.raises(ParameterError, match="must end in"):
        predict_file(clf_package, tmp_path / "with_target.csv", tmp_path / "out.json")
    with pytest.raises(DataError, match="No data file"):
        predict_file(clf_package, tmp_path / "missing.csv", tmp_path / "out.csv")
    X.assign(island="Atlantis").to_csv(tmp_path / "odd.csv", index=False)
    predict_file(clf_package, tmp_path / "odd.csv", tmp_path / "odd_out.csv")
    assert "5 row(s): 'island': a category not seen in training" in caplog.text


def test_rebuilding_replaces_the_package_whole(clf_package, penguins, tmp_path):
    pkg = load_package(clf_package)
    X, y = pkg.reference()[FEATURES], pkg.reference()["species"]
    from mlkit.problem import Problem
    problem = Problem.from_dict({"data": "penguins", "target": "species", "task": "classification",
                                 "metric": "balanced_accuracy", "success_threshold": 0.8})
    out = tmp_path / "model"
    assert len(load_package(build_package(pkg.pipeline, X, y, problem, {}, out)).reference()) == len(X)
    second = load_package(build_package(pkg.pipeline, X.head(100), y.head(100), problem, {}, out, max_reference_rows=40))
    assert len(second.reference()) == 40 and second.metadata["reference"]["sampled"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary or old folders left behind
    assert second.metadata["training_data"]["rows"] == 100
    with pytest.raises(DataError, match="reserved"):
        build_package(pkg.pipeline, X.rename(columns={"year": "prediction"}), y, problem, {}, tmp_path / "x")


def _papermill(run_dir, **params):
    import papermill as pm
    pm.execute_notebook(str(Path(__file__).parents[1] / "templates" / "10_deploy.ipynb"), str(Path(run_dir) / "10_deploy.ipynb"),
                        parameters={"run_dir": str(run_dir), **params}, kernel_name="python3", progress_bar=False)
    return json.loads((Path(run_dir) / "deploy.json").read_text())


def test_deploy_template_deploys_a_passing_model(tmp_path):
    run = fabricate_run(tmp_path / "run")
    deploy = _papermill(run.path)
    assert deploy["deployed"] is True and deploy["package"] == "model"
    assert deploy["fresh_process_check"]["identical"] is True
    assert deploy["service_smoke_test"]["passed"] is True and all(deploy["service_smoke_test"]["checks"].values())
    assert [c["status"] for c in deploy["service_smoke_test"]["calls"]] == [200, 200, 200, 422]
    assert load_package(run.path / "model").version == deploy["model_version"]
    assert not (run.path / ".model-candidate").exists()
    out = subprocess.run(["pgrep", "-f", f"{run.path}/.model-candidate"], capture_output=True, text=True)
    assert out.stdout.strip() == ""  # the smoke test's server is gone
    # the package holds the run's metrics, its model card and the rows the tuned pipeline was fitted on
    pkg = load_package(run.path / "model")
    assert pkg.metadata["metrics"]["test"] == run.load_json("test")["metrics"]
    assert pkg.metadata["metrics"]["test_verdict"]["passed"] is True
    assert pkg.model_card().startswith("# Model card\n\nA penguin species classifier")
    assert pkg.metadata["training_data"]["rows"] == len(run.split("train")[0])


def test_deploy_template_packages_the_rows_08_tune_refitted_on(tmp_path):
    run = fabricate_run(tmp_path / "run")
    X, y = run.split("train+validation")
    run.save_model("tuned", run.load_model("tuned").fit(X, y))
    run.save_json("tuning", {"refit_on": "train+validation", "rows": len(X)})
    assert _papermill(run.path, serve_smoke_test=False)["deployed"] is True
    pkg = load_package(run.path / "model")
    assert pkg.metadata["training_data"]["rows"] == len(X) == len(pkg.reference())


def test_deploy_template_refuses_a_failing_model(tmp_path):
    """A model that missed its criterion: 10_deploy says why in deploy.json, once, and stops at the gate."""
    from papermill.exceptions import PapermillExecutionError
    import nbformat
    run = fabricate_run(tmp_path / "run", passed=False)
    with pytest.raises(PapermillExecutionError) as e:
        _papermill(run.path)
    assert e.value.ename == "StageSkipped" and "misses the success criterion" in e.value.evalue
    deploy = run.load_json("deploy")
    assert deploy["deployed"] is False and deploy["package"] is None
    assert "misses the success criterion" in deploy["reason"] and deploy["reason"] == e.value.evalue
    assert not (run.path / "model").exists() and not (run.path / ".model-candidate").exists()
    nb = nbformat.read(run.path / "10_deploy.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].traceback == [f"StageSkipped: {deploy['reason']}"]  # the message, no traceback


def test_mlkit_run_records_a_failed_gate_as_skipped(tmp_path):
    """`mlkit run` records 10_deploy after a failed test as skipped, with the reason, and the run succeeds."""
    import nbformat
    run = fabricate_run(tmp_path / "run", passed=False)
    run.save_json("run", {"status": "succeeded", "run_dir": str(run.path), "params": {}, "stages": []})
    r = subprocess.run([str(Path(sys.executable).with_name("mlkit")), "run", "--out", "run", "--from", "10_deploy",
                        "--to", "10_deploy"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = run.load_json("run")
    assert rec["status"] == "succeeded"
    (stage,) = rec["stages"]
    reason = run.load_json("deploy")["reason"]
    assert (stage["name"], stage["status"], stage["reason"]) == ("10_deploy", "skipped", reason)
    assert f"10_deploy    skipped" in r.stderr and reason in r.stderr and "succeeded in" in r.stdout
    nb = nbformat.read(run.path / "10_deploy.ipynb", as_version=4)  # not an error: papermill's red banner is gone
    assert not [c for c in nb.cells if "papermill-error-cell-tag" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("src, dst", [("csv", "csv"), ("parquet", "parquet")])
def test_mlkit_predict_in_chunks_equals_scoring_whole(clf_package, penguins, tmp_path, src, dst):
    "`mlkit predict --chunk-rows 50` writes what scoring the file whole writes, and reports its progress on stderr."
    from click.testing import CliRunner
    from mlkit.cli import main
    X = penguins.drop(columns="species")
    inp = tmp_path / f"new.{src}"
    X.to_csv(inp, index=False) if src == "csv" else X.to_parquet(inp, index=False)
    read = pd.read_csv if dst == "csv" else pd.read_parquet
    whole = read(predict_file(clf_package, inp, tmp_path / f"whole.{dst}", chunk_rows=10_000))
    r = CliRunner().invoke(main, ["predict", str(clf_package), str(inp), "--out", str(tmp_path / f"chunked.{dst}"), "--chunk-rows", "50"])
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(read(tmp_path / f"chunked.{dst}"), whole)
    assert f"scored {len(X):,} rows" in r.stderr and "rows/s" in r.stderr and "wrote" in r.stdout
    assert whole.prediction.tolist() == load_package(clf_package).pipeline.predict(X).tolist()


def test_mlkit_predict_refusing_a_late_chunk_writes_nothing(clf_package, penguins, tmp_path):
    from click.testing import CliRunner
    from mlkit.cli import main
    X = penguins.drop(columns="species").head(120).reset_index(drop=True)
    X.assign(body_mass_g=X.body_mass_g.astype(object).where(X.index != 110, "heavy")).to_csv(tmp_path / "late.csv", index=False)
    r = CliRunner().invoke(main, ["predict", str(clf_package), str(tmp_path / "late.csv"), "--out", str(tmp_path / "out.csv"),
                                  "--chunk-rows", "50"])
    assert r.exit_code == 2
    assert "Column 'body_mass_g' must hold numbers but holds text: 1 row(s), the first at row 110" in r.stderr
    assert "rows 100 to 119" in r.stderr and "Nothing was written" in r.stderr
    assert not list(tmp_path.glob("out.csv*"))
    r = CliRunner().invoke(main, ["predict", str(clf_package), str(tmp_path / "late.csv"), "--out", str(tmp_path / "o.csv"),
                                  "--chunk-rows", "0"])
    assert r.exit_code == 2 and "Invalid value for '--chunk-rows'" in r.stderr
