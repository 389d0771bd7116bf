"""Drift monitoring: known shifts are caught, unshifted batches raise no alarm, monitor.json keeps its shape,
prediction logs work as current data, bad inputs get clear errors, and (when Evidently is installed) our
per-column verdicts agree with Evidently's on the same data."""
from __future__ import annotations
import json
import numpy as np
import pandas as pd
import pytest

from mlkit.core import DataError, ModelPackageError, SchemaError, ParameterError
from mlkit.drift import column_drift, dataset_drift, simulate_batch, SMALL_REFERENCE
from mlkit.monitor import run_monitor, VERDICTS
from mlkit.retrain import compare_packages, refit_package


@pytest.fixture(scope="module")
def clf_reference(clf_package):
    from mlkit.package import load_package
    return load_package(clf_package).reference()


def _strict_json(path):
    "Parse JSON the way strict parsers do: NaN and Infinity are errors."
    def bad(name): raise AssertionError(f"{path} holds {name}, which strict JSON parsers reject")
    return json.loads(path.read_text(), parse_constant=bad)


# --- the tests themselves, on synthetic data with known answers -------------------------------------------

@pytest.mark.parametrize("n_ref, test", [(500, "ks"), (5000, "wasserstein")])
def test_numeric_mean_shift_is_caught(n_ref, test):
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(50, 10, n_ref))
    same = column_drift(ref, pd.Series(rng.normal(50, 10, 2000)))
    moved = column_drift(ref, pd.Series(rng.normal(55, 10, 2000)))  # half a standard deviation
    assert (same["test"], moved["test"]) == (test, test)
    assert not same["drift"] and moved["drift"]
    if test == "wasserstein":  # the distance is in reference standard deviations
        assert moved["score"] == pytest.approx(0.5, abs=0.05) and same["score"] < 0.1


@pytest.mark.parametrize("n_ref, test", [(500, "chisquare"), (5000, "jensenshannon")])
def test_category_mix_change_is_caught(n_ref, test):
    rng = np.random.default_rng(1)
    cats, p = ["car", "bus", "bike", "walk"], [0.4, 0.3, 0.2, 0.1]
    ref = pd.Series(rng.choice(cats, n_ref, p=p))
    same = column_drift(ref, pd.Series(rng.choice(cats, 3000, p=p)))
    moved = column_drift(ref, pd.Series(rng.choice(cats, 3000, p=[0.15, 0.3, 0.2, 0.35])))
    assert (same["test"], moved["test"]) == (test, test)
    assert not same["drift"] and moved["drift"]


def test_binary_column_uses_z_test_and_catches_a_change():
    rng = np.random.default_rng(2)
    ref = pd.Series(rng.choice([True, False], 600, p=[0.3, 0.7]))
    assert column_drift(ref, pd.Series(rng.choice([True, False], 600, p=[0.3, 0.7])))["drift"] is False
    moved = column_drift(ref, pd.Series(rng.choice([True, False], 600, p=[0.45, 0.55])))
    assert moved["test"] == "z" and moved["drift"] and moved["p_value"] < 0.05


def test_few_valued_numbers_are_compared_as_categories():
    ref = pd.Series([1, 2, 3, 4] * 100)
    r = column_drift(ref, pd.Series([1, 2, 3, 4, 4, 4] * 50))
    assert r["compared_as"] == "categorical" and r["test"] == "chisquare" and r["drift"]


def test_dataset_drift_needs_half_of_the_columns():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(rng.normal(size=(800, 4)), columns=list("abcd"))
    cur = pd.DataFrame(rng.normal(size=(800, 4)), columns=list("abcd"))
    one = dataset_drift(ref, cur.assign(a=cur.a + 1))
    two = dataset_drift(ref, cur.assign(a=cur.a + 1, b=cur.b + 1))
    assert (one["n_drifted"], one["dataset_drift"]) == (1, False)
    assert (two["n_drifted"], two["drift_share"], two["dataset_drift"]) == (2, 0.5, True)


# --- run_monitor on model packages ---------------------------------------------------------------------

def test_unshifted_batches_raise_no_false_alarm(clf_package, clf_reference):
    verdicts, drifted, tested = [], 0, 0
    for seed in range(10):
        batch = simulate_batch(clf_reference, 400, target="species", seed=seed)
        res = run_monitor(clf_package, batch, out_dir=None, report=False)
        assert not res["dataset_drift"], (seed, res["drifted_columns"])
        assert res["performance"]["degraded"] is False, (seed, res["performance"])
        verdicts.append(res["verdict"]); drifted += res["n_drifted"]; tested += res["n_columns"]
    # a 5 % test flags about one column in twenty by chance; resampled batches stay below that
    assert drifted / tested <= 0.08, (drifted, tested)
    assert verdicts.count("no action") >= 8, verdicts


def test_shifted_batch_is_caught_with_and_without_labels(clf_package, clf_reference, tmp_path):
    batch = simulate_batch(clf_reference, 400, shift=-1.0, mix=0.3, target="species", seed=1)
    blind = run_monitor(clf_package, batch.drop(columns="species"), out_dir=tmp_path / "blind")
    assert blind["dataset_drift"] and blind["prediction"]["drift"] and blind["performance"] is None
    assert blind["verdict"] == "retrain" and "no labels" in blind["reasons"][0]
    labelled = run_monitor(clf_package, batch, out_dir=tmp_path / "labelled")
    perf = labelled["performance"]
    assert labelled["verdict"] == "retrain" and perf["degraded"] and perf["rows"] == 400
    assert perf["current"]["balanced_accuracy"] < perf["test"]["balanced_accuracy"] * 0.95
    assert labelled["reasons"][0].startswith("Performance dropped: balanced_accuracy")


def test_drift_that_does_not_hurt_is_investigate_not_retrain(clf_package, clf_reference):
    # every measurement up by one standard deviation: the species stay easy to tell apart
    batch = simulate_batch(clf_reference, 400, shift=1.0, target="species", seed=1)
    res = run_monitor(clf_package, batch, out_dir=None, report=False)
    assert res["dataset_drift"] and not res["performance"]["degraded"]
    assert res["verdict"] == "investigate"


def test_large_reference_uses_distances(clf_package, clf_reference, tmp_path):
    big_ref = simulate_batch(clf_reference, 5000, seed=10)
    big_ref.to_parquet(tmp_path / "ref.parquet")
    calm = simulate_batch(clf_reference, 20000, seed=11)
    res = run_monitor(clf_package, calm, reference=tmp_path / "ref.parquet", out_dir=None, report=False)
    tests = {c: r["test"] for c, r in res["columns"].items()}
    assert tests["bill_length_mm"] == "wasserstein" and tests["island"] == "jensenshannon" and tests["year"] == "jensenshannon"
    assert all("score" in r and "p_value" not in r for r in res["columns"].values())
    assert res["n_drifted"] == 0 and res["verdict"] == "no action"
    moved = simulate_batch(clf_reference, 20000, shift=0.5, mix=0.2, seed=12)
    res = run_monitor(clf_package, moved, reference=tmp_path / "ref.parquet", out_dir=None, report=False)
    assert res["dataset_drift"] and {"bill_length_mm", "body_mass_g", "island"} <= set(res["drifted_columns"])
    assert res["reference"]["rows"] == 5000 > SMALL_REFERENCE


def test_monitor_json_shape(clf_package, clf_reference, tmp_path):
    batch = simulate_batch(clf_reference, 300, shift=0.8, target="species", seed=4)
    batch.loc[:20, "island"] = "Atlantis"  # a category the model never saw
    res = run_monitor(clf_package, batch, out_dir=tmp_path)
    saved = _strict_json(tmp_path / "monitor.json")
    assert saved == json.loads(json.dumps(res))
    assert isinstance(saved["dataset_drift"], bool) and 0 <= saved["drift_share"] <= 1
    assert saved["verdict"] in VERDICTS and saved["reasons"]
    for name, col in saved["columns"].items():
        assert {"kind", "test", "statistic", "threshold", "drift", "n_reference", "n_current"} <= set(col), name
        assert ("p_value" in col) != ("score" in col), name
    assert saved["columns"]["island"]["drift"] and saved["columns"]["island"]["p_value"] == 0.0  # unseen value: p = 0
    assert saved["quality"]["columns"]["island"]["new_categories"] == {"Atlantis": 21}
    assert any(i.startswith("island: 1 value(s) never seen") for i in saved["quality"]["issues"])
    assert set(saved["prediction"]) >= {"test", "drift"} and saved["target"]["test"] == "chisquare"
    assert set(saved["performance"]["current"]) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}
    assert saved["current"] == {"source": "a data frame of 300 rows", "rows": 300, "labelled": True}
    assert saved["timings"]["total"] >= saved["timings"]["drift"] > 0
    page = (tmp_path / "monitor.html").read_text()
    assert page.count("data:image/png;base64,") == len(saved["columns"]) + 1  # one per column, and the predictions
    assert f"v-{saved['verdict'].replace(' ', '-')}" in page and "Atlantis" in page


def test_regression_package_reports_its_metrics(reg_package):
    from mlkit.package import load_package
    ref = load_package(reg_package).reference()
    calm = run_monitor(reg_package, simulate_batch(ref, 300, target="body_mass_g", seed=5), out_dir=None, report=False)
    assert calm["prediction"]["test"] == "ks" and calm["verdict"] == "no action"
    assert set(calm["performance"]["current"]) == {"rmse", "mae", "r2"} and not calm["performance"]["degraded"]
    moved = run_monitor(reg_package, simulate_batch(ref, 300, shift=1.5, columns=["flipper_length_mm", "bill_depth_mm"],
                                                    target="body_mass_g", seed=5), out_dir=None, report=False)
    assert moved["performance"]["degraded"] and moved["verdict"] == "retrain"
    assert moved["performance"]["current"]["rmse"] > moved["performance"]["test"]["rmse"]


def test_prediction_log_as_current(clf_package, clf_reference, tmp_path):
    from mlkit.package import load_package
    from mlkit.predlog import PredictionLog
    pkg = load_package(clf_package)
    batch = simulate_batch(clf_reference, 120, seed=6).drop(columns="species")
    pred = pkg.predict(batch)
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    records = json.loads(batch.to_json(orient="records"))
    log.write("req-1", pkg.version, records[:60], pred.prediction[:60].tolist())
    log.write("req-2", pkg.version, records[60:], pred.prediction[60:].tolist())
    log.close()
    res = run_monitor(clf_package, f"sqlite:///{tmp_path / 'log.db'}", out_dir=tmp_path / "mon")
    assert res["current"]["rows"] == 120 and res["current"]["source"].startswith("sqlite:///")
    assert res["prediction"]["n_current"] == 120 and not res["dataset_drift"]
    assert res["performance"] is None  # the log has no labels
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    PredictionLog(empty).close()
    with pytest.raises(DataError, match="holds no predictions yet"):
        run_monitor(clf_package, empty, out_dir=None)


def test_bad_inputs_get_clear_errors(clf_package, clf_reference, tmp_path):
    batch = simulate_batch(clf_reference, 50, seed=7)
    with pytest.raises(SchemaError, match=r"current data does not fit the model's inputs: .*lacks the column\(s\) 'island'"):
        run_monitor(clf_package, batch.drop(columns="island"), out_dir=None)
    with pytest.raises(SchemaError, match="Column 'body_mass_g' must hold numbers but holds text"):
        run_monitor(clf_package, batch.assign(body_mass_g="heavy"), out_dir=None)
    with pytest.raises(DataError, match="No data file at"):
        run_monitor(clf_package, tmp_path / "missing.csv", out_dir=None)
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
    with pytest.raises(DataError, match="is not an Excel workbook"):
        run_monitor(clf_package, tmp_path / "data.xlsx", out_dir=None)
    (tmp_path / "broken.parquet").write_text("these are not parquet bytes")
    with pytest.raises(DataError, match="Could not read .* as Parquet"):
        run_monitor(clf_package, tmp_path / "broken.parquet", out_dir=None)
    with pytest.raises(ModelPackageError, match="No model package at"):
        run_monitor(tmp_path / "no-model", batch, out_dir=None)
    with pytest.raises(ParameterError, match="The 'drift_share' parameter must be a number in the range \(0, 1\]"):
        run_monitor(clf_package, batch, out_dir=None, drift_share=0)


def test_cli_monitor_exits_3_on_drift(clf_package, clf_reference, tmp_path):
    from click.testing import CliRunner
    from mlkit.cli import main
    simulate_batch(clf_reference, 300, seed=8).to_csv(tmp_path / "calm.csv", index=False)
    simulate_batch(clf_reference, 300, shift=-1.0, mix=0.3, seed=8).to_csv(tmp_path / "moved.csv", index=False)
    args = ["monitor", str(clf_package), "--out", str(tmp_path / "out"), "--fail-on-drift", "--current"]
    calm = CliRunner().invoke(main, args + [str(tmp_path / "calm.csv")])
    assert calm.exit_code == 0, calm.output
    moved = CliRunner().invoke(main, args + [str(tmp_path / "moved.csv")])
    assert moved.exit_code == 3, moved.output
    assert _strict_json(tmp_path / "out" / "monitor.json")["dataset_drift"] is True


# --- after retraining -------------------------------------------------------------------------------------

def test_compare_packages_promotes_only_a_better_model(clf_package, reg_package, clf_reference, tmp_path):
    new = simulate_batch(clf_reference, 600, shift=-1.0, mix=0.3, target="species", seed=9)
    train, test = new.iloc[:300], new.iloc[300:]
    cand = refit_package(clf_package, pd.concat([clf_reference.drop(columns="prediction"), train]), tmp_path / "cand", test=test)
    won = compare_packages(clf_package, cand, test)
    assert won["decision"] == "promote" and won["promote"] and won["gain"] > 0
    kept = compare_packages(clf_package, clf_package, test)
    assert kept["decision"] == "keep current" and kept["gain"] == 0
    assert compare_packages(clf_package, cand, test, min_gain=1.0)["decision"] == "keep current"
    with pytest.raises(ModelPackageError, match="predict different things"):
        compare_packages(clf_package, reg_package, test)
    with pytest.raises(DataError, match="has no labels"):
        compare_packages(clf_package, cand, test.drop(columns="species"))
    with pytest.raises(DataError, match="only be refitted on labelled rows"):
        refit_package(clf_package, train.drop(columns="species"), tmp_path / "never")


# --- cross-check with Evidently (skipped when it is not installed) ----------------------------------------

def _evidently_columns(ref, cur, numerical, categorical):
    import warnings
    from evidently.legacy.report import Report
    from evidently.legacy.metrics import DataDriftTable
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = Report(metrics=[DataDriftTable()])
        report.run(reference_data=ref, current_data=cur,
                   column_mapping=ColumnMapping(numerical_features=numerical, categorical_features=categorical))
        result = report.as_dict()["metrics"][0]["result"]
    return result


EVIDENTLY_NAMES = {"ks": "K-S p_value", "chisquare": "chi-square p_value", "z": "Z-test p_value",
                   "wasserstein": "Wasserstein distance (normed)", "jensenshannon": "Jensen-Shannon distance"}


@pytest.mark.parametrize("n_ref, n_cur, shift, mix, seed", [
    (200, 300, 0.0, 0.0, 0), (200, 300, 0.4, 0.2, 1), (200, 300, 1.0, 0.4, 2),
    (3000, 5000, 0.0, 0.0, 3), (3000, 5000, 0.15, 0.1, 4), (3000, 5000, 0.6, 0.3, 5)])
def test_verdicts_match_evidently(n_ref, n_cur, shift, mix, seed):
    pytest.importorskip("evidently", reason="Evidently is not installed; this cross-check runs where it is")
    from palmerpenguins import load_penguins
    peng = load_penguins().drop(columns="species").dropna().reset_index(drop=True)
    ref = simulate_batch(peng, n_ref, seed=seed)
    cur = simulate_batch(peng, n_cur, shift=shift, mix=mix, seed=seed + 100)
    numerical = [c for c in ref.columns if pd.api.types.is_numeric_dtype(ref[c])]
    categorical = [c for c in ref.columns if c not in numerical]
    ours = dataset_drift(ref, cur, kinds={**{c: "numeric" for c in numerical}, **{c: "categorical" for c in categorical}})
    theirs = _evidently_columns(ref, cur, numerical, categorical)
    for c, r in ours["columns"].items():
        ev = theirs["drift_by_columns"][c]
        assert EVIDENTLY_NAMES[r["test"]] == ev["stattest_name"], (c, r["test"], ev["stattest_name"])
        assert r["drift"] == ev["drift_detected"], (c, r, ev)
        value = r.get("p_value", r.get("score"))
        assert value == pytest.approx(ev["drift_score"], rel=1e-6, abs=1e-9), (c, value, ev["drift_score"])
    assert ours["n_drifted"] == theirs["number_of_drifted_columns"]
    assert ours["dataset_drift"] == theirs["dataset_drift"]


# --- production surprises: new classes, logs from several model versions, tiny batches, secrets ------------

def test_a_class_the_model_never_learnt_means_retrain(clf_package, clf_reference):
    batch = simulate_batch(clf_reference, 200, target="species", seed=13)
    batch.loc[:39, "species"] = "Emperor"  # a new species turns up in the labels
    res = run_monitor(clf_package, batch, out_dir=None, report=False)
    perf = res["performance"]
    assert perf["unknown_classes"] == {"Emperor": 40} and perf["current"]["roc_auc"] is None
    assert perf["current"]["accuracy"] <= 0.8 + 1e-9  # every Emperor row is necessarily wrong
    assert res["verdict"] == "retrain" and res["reasons"][0].startswith("The labels hold 1 class(es)")
    assert "'Emperor' (40 rows)" in res["reasons"][0] and res["target"]["drift"]


def test_logged_predictions_of_another_model_version_are_recomputed(clf_package, clf_reference, tmp_path):
    from mlkit.package import load_package
    from mlkit.predlog import PredictionLog
    pkg = load_package(clf_package)
    batch = simulate_batch(clf_reference, 120, seed=14).drop(columns="species")
    records = json.loads(batch.to_json(orient="records"))
    log = PredictionLog(tmp_path / "log.sqlite")
    log.write("old", "an-earlier-model", records[:60], ["Adelie"] * 60)  # what an older model answered
    log.write("new", pkg.version, records[60:], pkg.predict(batch.iloc[60:]).prediction.tolist())
    log.close()
    res = run_monitor(clf_package, tmp_path / "log.sqlite", out_dir=None, report=False)
    assert not res["prediction"]["drift"], res["prediction"]  # 60 stale 'Adelie' answers would have looked like drift
    assert any(r.startswith("60 of 120 logged rows were scored by another model version") for r in res["reasons"])


def test_a_tiny_batch_says_the_tests_can_hardly_tell(clf_package, clf_reference):
    res = run_monitor(clf_package, simulate_batch(clf_reference, 3, seed=15), out_dir=None, report=False)
    assert any(r.startswith("Only 3 current row(s): too few") for r in res["reasons"])
    res = run_monitor(clf_package, simulate_batch(clf_reference, 200, seed=15), out_dir=None, report=False)
    assert not any("too few" in r for r in res["reasons"])


def test_database_passwords_stay_out_of_errors_and_reports(clf_package, clf_reference):
    from mlkit.monitor import _describe
    assert _describe("postgresql://bob:s3cret@db.example:5432/log") == "postgresql://bob:***@db.example:5432/log"
    with pytest.raises(DataError) as e:  # no driver for this database here: a clear error, and no password in it
        run_monitor(clf_package, "mysql+nosuchdriver://bob:s3cret@db.example/log", out_dir=None)
    assert "s3cret" not in str(e.value) and "bob:***@db.example" in str(e.value)


# --- the 11_monitor template ---------------------------------------------------------------------------------

def test_monitor_template_skips_when_nothing_was_deployed(tmp_path):
    """With no model deployed, 11_monitor stops at once with `StageSkipped` and the reason; it runs nothing else."""
    import nbformat, papermill as pm
    from pathlib import Path
    from conftest import fabricate_run
    run = fabricate_run(tmp_path / "run", passed=False)
    why = "The test balanced_accuracy of 0.333 misses the success criterion (at least 0.8), so the model is not deployed."
    run.save_json("deploy", {"deployed": False, "reason": why, "package": None})
    out = tmp_path / "run" / "11_monitor.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(Path(__file__).parents[1] / "templates" / "11_monitor.ipynb"), str(out),
                            parameters={"run_dir": str(run.path)}, kernel_name="python3", progress_bar=False)
    assert e.value.ename == "StageSkipped"
    assert "Nothing was deployed, so there is no model in production to monitor" in e.value.evalue and why in e.value.evalue
    nb = nbformat.read(out, as_version=4)
    ran = [c for c in nb.cells if c.cell_type == "code" and c.get("execution_count")]
    assert [c.metadata.get("tags", []) for c in ran[:2]] == [["parameters"], ["injected-parameters"]]
    assert len(ran) == 3 and ran[2].outputs[-1].ename == "StageSkipped"  # one cell says why, once, and nothing runs after it
    assert not (run.path / "monitoring").exists()
