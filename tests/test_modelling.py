"""The modelling stages (03_features … 09_test) with a group or a time split, through `mlkit run`.

The library's own behaviour is tested inline in notebooks/features … tune; what only a
run of the templates can show is that a group or time column set on the command line reaches
every stage: the split keeps groups (or time) apart, cross-validation in 05/06/08 follows the
same rule, and the final model still scores the sealed test rows. The visit date, text in the
CSV, becomes month and day-of-week features in every run; a last test checks that a model
package with such features accepts dates as ISO text, in batch and over HTTP.
"""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

MLKIT = [str(Path(sys.executable).with_name("mlkit"))]


def visits(n_patients: int = 60, per_patient: int = 6, seed: int = 0) -> pd.DataFrame:
    "Clinic visits: several rows per patient, a visit date, a text category with gaps, and an outcome."
    rng = np.random.default_rng(seed)
    n = n_patients * per_patient
    patient = np.repeat(np.arange(n_patients), per_patient)
    frailty = rng.normal(0, 1, n_patients)[patient]  # what makes one patient's rows alike
    ward = rng.choice(["cardio", "neuro", "ortho"], n)
    dose = rng.normal(5, 2, n)
    risk = frailty + 0.6 * (dose - 5) + (ward == "cardio") * 1.0 + rng.normal(0, 0.5, n)
    df = pd.DataFrame({
        "patient_ref": patient,  # not named like an ID, so the test drops it explicitly
        "visit_date": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.permutation(n), "D"),
        "ward": ward, "dose": dose, "age": rng.integers(20, 90, n).astype(float),
        "outcome": np.where(risk > 0.8, "readmitted", "home")})
    df.loc[rng.choice(n, 30, replace=False), "ward"] = None
    df.loc[rng.choice(n, 25, replace=False), "dose"] = np.nan
    df["visit_date"] = df.visit_date.dt.strftime("%Y-%m-%d")  # dates arrive as text in a CSV
    return df


def run_chain(tmp_path, **params):
    df = visits()
    df.to_csv(tmp_path / "visits.csv", index=False)
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--to", "09_test", "-p", "data", str(tmp_path / "visits.csv"),
            "-p", "target", "outcome", "-p", "profile", "false", "-p", "success_threshold", "0.6"]
    for k, v in params.items(): args += ["-p", k, str(v)]
    r = subprocess.run(MLKIT + args, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                       env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stderr[-3000:]
    from mlkit.runfolder import RunFolder
    return df, RunFolder(out)


def check_final_model(run):
    "The tuned model was scored on the test rows, with every classification metric and a verdict."
    test = run.load_json("test")
    assert set(test["metrics"]) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}
    assert test["score"] == test["metrics"]["balanced_accuracy"] and test["passed"] == (test["score"] >= 0.6)
    assert test["metrics"]["balanced_accuracy"] > 0.6  # the outcome is learnable from ward and dose
    assert "**Result: PASSED**" in run.file("model_card").read_text()
    # judged by balanced accuracy, the chosen model weighs the classes in every stage that builds it
    chosen, tuning = run.load_json("chosen")["name"], run.load_json("tuning")
    for saved in ("pipeline", "tuned"):
        model = run.load_model(saved).named_steps["model"]
        if chosen not in ("baseline", "knn"):
            assert model.class_weight == "balanced", (saved, chosen)
    # the search recorded is the one that ran: a grid tries the whole space, a random search n_iter settings
    from mlkit.tune import search_space, space_size
    size = space_size(search_space(chosen, "classification"))
    assert (tuning["search"], tuning["settings_tried"]) == (("grid", size) if size <= 10 else ("random", 10))
    plan = pd.read_csv(run.file("feature_plan")).set_index("column")
    assert plan.loc["visit_date", "role"] == "date"
    # 02_prepare read the CSV's text dates as dates, so the plan meets a date column, not text
    assert plan.loc["visit_date", "reason"].startswith("date/time: month, day of week created; "
                                                      "the raw timestamp and the year are left out")
    assert plan.loc["ward", "role"] == "categorical"
    # the tuned pipeline reads the date and feeds the model its cyclical parts, never the raw timestamp
    from mlkit.features import used_columns
    tuned = run.load_model("tuned")
    assert "visit_date" in used_columns(tuned)
    names = [n for n in tuned.named_steps["preprocess"].get_feature_names_out() if "visit_date" in n]
    assert names == [f"date__visit_date_{p}_{f}" for p in ("month", "day_of_week") for f in ("sin", "cos")]


def test_group_split_keeps_patients_apart_in_every_stage(tmp_path):
    df, run = run_chain(tmp_path, group_column="patient_ref", drop_columns="patient_ref", cv_folds=4)
    from mlkit.split import cross_validator
    checks = run.load_json("split_checks")
    assert checks["ok"] and checks["groups"]["in_two_splits"] == 0
    patients = {name: set(run.split(name)[0].patient_ref) for name in ("train", "validation", "test")}
    assert not (patients["train"] & patients["test"]) and not (patients["train"] & patients["validation"])
    # the cross-validation 05/06/08 used keeps a patient's rows in one fold
    X, y = run.split("train")
    cv, groups = cross_validator(X, y, run.problem(), 4, checks["settings"])
    for tr, te in cv.split(X, y, groups):
        assert not set(X.patient_ref.iloc[tr]) & set(X.patient_ref.iloc[te])
    assert pd.read_csv(run.file("feature_plan")).set_index("column").loc["patient_ref", "role"] == "dropped"
    check_final_model(run)


def test_time_split_trains_on_the_past(tmp_path):
    df, run = run_chain(tmp_path, time_column="visit_date", drop_columns="patient_ref", cv_folds=3)
    checks = run.load_json("split_checks")
    assert checks["ok"] and checks["time"]["ordered"]
    dates = {name: pd.to_datetime(run.split(name)[0].visit_date) for name in ("train", "validation", "test")}
    assert dates["train"].max() < dates["validation"].min() and dates["validation"].max() < dates["test"].min()
    # rows come back in time order, as forward-chaining folds need
    assert dates["train"].is_monotonic_increasing
    assert pd.to_datetime(run.split("train+validation")[0].visit_date).is_monotonic_increasing
    check_final_model(run)


def test_package_with_date_features_scores_iso_dates(tmp_path):
    """A pipeline built by mlkit.features on a text date packages, and scores dates sent as ISO text."""
    from click.testing import CliRunner
    from fastapi.testclient import TestClient
    from mlkit.cli import main
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from mlkit.features import build_preprocessor
    from mlkit.package import build_package, load_package
    from mlkit.problem import define_problem
    from mlkit.serve import create_app
    df = visits(n_patients=30).drop(columns="patient_ref")
    df["visit_date"] = df.visit_date + " 09:30"  # times of day too: the hour becomes a feature
    df.loc[::7, "visit_date"] = df.visit_date[::7].str[:10]  # and some dates without a time
    X, y = df.drop(columns="outcome"), df.outcome
    pre, plan = build_preprocessor(df, "outcome")
    assert plan.set_index("column").loc["visit_date", "treatment"].startswith("month, day of week, hour as sin/cos pairs")
    pipe = Pipeline([("preprocess", pre), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    problem = define_problem(df, "visits", "outcome", context="Test fixture: clinic visits.")
    pkg_dir = build_package(pipe, X, y, problem, {"validation": {}, "test": {}}, tmp_path / "model")
    pkg = load_package(pkg_dir)
    assert pkg.schema["visit_date"].kind == "datetime" and pkg.schema["visit_date"].categories is None

    # batch (`mlkit predict`): a CSV with dates as text, ISO with or without a time, or missing
    new = X.head(6).assign(visit_date=["2024-03-01T08:15:00", "2024-03-02", "2024-03-03 23:00", None,
                                       "2024-12-24T18:00:00+01:00", "2025-01-01T00:00:00Z"])
    new.to_csv(tmp_path / "new.csv", index=False)
    r = CliRunner().invoke(main, ["predict", str(pkg_dir), str(tmp_path / "new.csv"), "--out", str(tmp_path / "scored.csv")])
    assert r.exit_code == 0, r.output
    scored = pd.read_csv(tmp_path / "scored.csv")
    proba = scored[[f"proba_{c}" for c in pipe.classes_]].to_numpy()
    np.testing.assert_allclose(proba, pipe.predict_proba(new), atol=1e-12)  # as the pipeline scores the raw text
    moved = pipe.predict_proba(new.assign(visit_date="2024-07-15T20:00:00"))
    assert np.abs(moved - proba).max() > 1e-6  # the date does reach the model

    # HTTP: the same records as JSON, the date as an ISO string
    records = json.loads(new.to_json(orient="records"))
    with TestClient(create_app(pkg_dir, log_url=str(tmp_path / "log.sqlite"))) as client:
        assert client.get("/health").json()["status"] == "ok"
        r = client.post("/predict", json={"records": records})
        assert r.status_code == 200, r.text
        ans = r.json()
        assert ans["predictions"] == scored.prediction.tolist() and ans["warnings"] == []
        np.testing.assert_allclose([[p[c] for c in pipe.classes_] for p in ans["probabilities"]], proba, atol=1e-12)
        r = client.post("/predict", json={"records": [{**records[0], "visit_date": "next Tuesday"}]})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "visit_date"
        assert "date-time" in r.json()["detail"][0]["message"] and "Tuesday" not in r.text


def test_large_table_paths_at_small_sizes(tmp_path):
    "The samples, the left-out rule and successive halving of a million-row run, reached through the templates on 360 rows."
    df, run = run_chain(tmp_path, compare_rows=100, learning_rows=80, importance_rows=40, halving_rows=50, tune_rows=150,
                        candidates="baseline,tree,boosting")  # each space holds more than 10 settings: a random search
    n_train, n_val = len(run.split("train")[0]), len(run.split("validation")[0])
    board = pd.read_csv(run.file("leaderboard"))
    assert set(board.rows) == {100} and board.left_out.isna().all()
    pages = {s: (run.path / f"{s}.ipynb").read_text() for s in ("05_select", "06_train", "07_evaluate", "08_tune")}
    assert f"Candidates compared on a random sample of 100 of {n_train} training rows (stratified by class" in pages["05_select"]
    assert f"Fitting {run.load_json('chosen')['name']!r} on {n_train} training rows" in pages["06_train"]  # the kept model: all rows
    assert f"Learning curve drawn on a random sample of 80 of {n_train} training rows" in pages["06_train"]
    assert f"Permutation importance measured on a random sample of 40 of {n_val} held-out rows" in pages["07_evaluate"]
    tuning, results = run.load_json("tuning"), pd.read_csv(run.file("search_results"))
    assert tuning["search"] == "halving" and "Successive halving over 10 settings" in pages["08_tune"]
    assert tuning["settings_tried"] == 10 and results["round"].iloc[0] == results["round"].max()
    assert results.rows.max() <= 150
    test = run.load_json("test")
    assert test["metrics"]["balanced_accuracy"] > 0.6
