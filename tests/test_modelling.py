"""The modelling stages (03_features … 09_test) with a group or a time split, through `mlkit run`.

The library's own behaviour is tested inline in notebooks/10_features … 14_tune; what only a
run of the templates can show is that a group or time column set on the command line reaches
every stage: the split keeps groups (or time) apart, cross-validation in 05/06/08 follows the
same rule, and the final model still scores the sealed test rows.
"""
import os, subprocess, sys
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
    plan = pd.read_csv(run.file("feature_plan")).set_index("column")
    assert plan.loc["visit_date", "role"] == "dropped" and "date/time" in plan.loc["visit_date", "reason"]
    assert plan.loc["ward", "role"] == "categorical"


def test_group_split_keeps_patients_apart_in_every_stage(tmp_path):
    df, run = run_chain(tmp_path, group_column="patient_ref", drop_columns="patient_ref", cv_folds=4)
    from mlkit.split import load_split, cross_validator
    checks = run.load_json("split_checks")
    assert checks["ok"] and checks["groups"]["in_two_splits"] == 0
    patients = {name: set(load_split(run, name)[0].patient_ref) for name in ("train", "validation", "test")}
    assert not (patients["train"] & patients["test"]) and not (patients["train"] & patients["validation"])
    # the cross-validation 05/06/08 used keeps a patient's rows in one fold
    X, y = load_split(run, "train")
    cv, groups = cross_validator(run, X, 4, y)
    for tr, te in cv.split(X, y, groups):
        assert not set(X.patient_ref.iloc[tr]) & set(X.patient_ref.iloc[te])
    assert pd.read_csv(run.file("feature_plan")).set_index("column").loc["patient_ref", "role"] == "dropped"
    check_final_model(run)


def test_time_split_trains_on_the_past(tmp_path):
    df, run = run_chain(tmp_path, time_column="visit_date", drop_columns="patient_ref", cv_folds=3)
    from mlkit.split import load_split
    checks = run.load_json("split_checks")
    assert checks["ok"] and checks["time"]["ordered"]
    dates = {name: pd.to_datetime(load_split(run, name)[0].visit_date) for name in ("train", "validation", "test")}
    assert dates["train"].max() < dates["validation"].min() and dates["validation"].max() < dates["test"].min()
    # rows come back in time order, as forward-chaining folds need
    assert dates["train"].is_monotonic_increasing
    assert pd.to_datetime(load_split(run, "train+validation")[0].visit_date).is_monotonic_increasing
    check_final_model(run)
