"""Shared fixtures: small model packages built straight from Palmer penguins, without the notebook chain.

`clf_package` (predict `species`) and `reg_package` (predict `body_mass_g`) are session-scoped folders
written by `mlkit.package.build_package`, so every test file (package, service, monitoring) reads the
same packages and building them costs about a second once per session.
"""
from __future__ import annotations
import os, tempfile
import numpy as np
import pandas as pd
import pytest

# Every run the tests make, in this process and in `mlkit` subprocesses, shares a stage cache of the session's own,
# never the user's (~/.cache/mlkit). Tests that need every stage to run pass --no-cache.
os.environ["MLKIT_CACHE"] = tempfile.mkdtemp(prefix="mlkit-test-cache-")


def penguin_data() -> pd.DataFrame:
    "Palmer penguins with a species, in a fixed order."
    from palmerpenguins import load_penguins
    return load_penguins().dropna(subset=["species"]).reset_index(drop=True)


def penguin_pipeline(X: pd.DataFrame, estimator):
    "Median-imputed, scaled numbers and one-hot categories (unseen ones ignored) in front of `estimator`."
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    num = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    cat = [c for c in X.columns if c not in num]
    return make_pipeline(make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), cat)),
        estimator)


def _metrics(task, pipe, X, y) -> dict:
    from sklearn import metrics as m
    pred = pipe.predict(X)
    if task == "classification":
        return {"accuracy": m.accuracy_score(y, pred), "balanced_accuracy": m.balanced_accuracy_score(y, pred),
                "f1_macro": m.f1_score(y, pred, average="macro"),
                "roc_auc": m.roc_auc_score(y, pipe.predict_proba(X), multi_class="ovr")}
    return {"rmse": float(np.sqrt(m.mean_squared_error(y, pred))), "mae": m.mean_absolute_error(y, pred), "r2": m.r2_score(y, pred)}


def build_penguin_package(out_dir, target: str = "species", task: str = "classification"):
    "Train a small penguin model (60/20/20 split) and write its package to `out_dir`; return the folder."
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split
    from mlkit.package import build_package
    from mlkit.problem import define_problem
    df = penguin_data().dropna(subset=[target])
    problem = define_problem(df, "penguins", target, task=task,
                             success_threshold=None if task == "classification" else 0.6,
                             context="Test fixture: penguins measured in the field.")
    strat = df[target] if task == "classification" else None
    train, rest = train_test_split(df, test_size=0.4, random_state=0, stratify=strat)
    val, test = train_test_split(rest, test_size=0.5, random_state=0, stratify=None if strat is None else rest[target])
    split = lambda d: (d.drop(columns=target).reset_index(drop=True), d[target].reset_index(drop=True))
    (Xtr, ytr), (Xva, yva), (Xte, yte) = split(train), split(val), split(test)
    est = LogisticRegression(max_iter=1000) if task == "classification" else Ridge()
    pipe = penguin_pipeline(Xtr, est).fit(Xtr, ytr)
    val_m, test_m = _metrics(task, pipe, Xva, yva), _metrics(task, pipe, Xte, yte)
    score = test_m[problem.metric]
    metrics = {"validation": val_m, "test": test_m,
               "test_verdict": {"metric": problem.metric, "score": score, "threshold": problem.success_threshold,
                                "passed": problem.passes(score)}}
    return build_package(pipe, Xtr, ytr, problem, metrics, out_dir)


@pytest.fixture(scope="session")
def penguins() -> pd.DataFrame:
    "Palmer penguins (rows with a species)."
    return penguin_data()


@pytest.fixture(scope="session")
def clf_package(tmp_path_factory):
    "A model package predicting penguin `species` (logistic regression); the folder's Path."
    return build_penguin_package(tmp_path_factory.mktemp("clf") / "model", "species", "classification")


@pytest.fixture(scope="session")
def reg_package(tmp_path_factory):
    "A model package predicting penguin `body_mass_g` (ridge regression); the folder's Path."
    return build_penguin_package(tmp_path_factory.mktemp("reg") / "model", "body_mass_g", "regression")


def fabricate_run(run_dir, passed: bool = True):
    """A run folder as 01_define … 09_test would leave it, made with library calls (penguins, predict species).

    `passed=False` trains a majority-class baseline, which misses the success criterion."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from mlkit.problem import define_problem
    from mlkit.runfolder import RunFolder
    from mlkit.split import make_splits
    run = RunFolder(run_dir)
    df = penguin_data()
    problem = define_problem(df, "penguins", "species", context="Identify penguin species from field measurements.")
    run.save_json("problem", problem.to_dict())
    run.save_frame("clean", df)
    run.save_frame("splits", make_splits(df, problem))
    run.save_json("conversions", {})  # 02_prepare read no column from text
    X, y = run.split("train")
    est = LogisticRegression(max_iter=1000) if passed else DummyClassifier(strategy="most_frequent")
    pipe = penguin_pipeline(X, est).fit(X, y)
    run.save_model("tuned", pipe)
    run.save_json("tuning", {"refit_on": "train", "rows": len(X)})  # the rows the tuned pipeline was fitted on
    scores = {}
    for name in ("validation", "test"):
        Xs, ys = run.split(name)
        p = pipe.predict(Xs)
        scores[name] = {"balanced_accuracy": balanced_accuracy_score(ys, p), "accuracy": accuracy_score(ys, p)}
    score = scores["test"]["balanced_accuracy"]
    run.save_json("validation", {"metrics": scores["validation"]})
    run.save_json("test", {"metrics": scores["test"], "metric": problem.metric, "score": score,
                           "threshold": problem.success_threshold, "passed": problem.passes(score)})
    run.save_text("model_card", "# Model card\n\nA penguin species classifier (a run fabricated for tests).\n")
    return run


def post_one_record_each(base_url: str, rows: list, workers: int) -> list:
    "POST each record alone to /predict from `workers` threads at once; the answers, in order (each must be 200)."
    import httpx
    from concurrent.futures import ThreadPoolExecutor
    def call(row):
        with httpx.Client(base_url=base_url, timeout=60) as client:
            r = client.post("/predict", json={"records": [row]})
            assert r.status_code == 200, r.text
            return r.json()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(call, rows))


# A fast chain on penguins (two candidates, a short search, no profile, no service smoke test), run once per session
# into a stage cache of its own: the cache, report and run-index tests share it.
FAST = {"candidates": "linear,tree", "n_iter": 3, "profile": False, "serve_smoke_test": False}


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    "A stage cache of the session's own."
    from mlkit.cache import StageCache
    return StageCache(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def cold(store, tmp_path_factory):
    "(folder of runs, run record): the whole fast chain, run once into `store` as `cold`."
    import mlkit.runner as runner
    d = tmp_path_factory.mktemp("runs")
    rec = runner.run_chain(dict(FAST), out=d / "cold", cache=store, echo=lambda s: None)
    return d, rec
