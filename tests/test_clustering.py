"""Clustering as a task, through the whole chain: penguins clustered on their measurements, judged against the species.

One chain run (module-scoped) serves the tests of its results; the refusals run no kernel at all.
"""
from __future__ import annotations
import json, os

import pandas as pd
import pytest
from click.testing import CliRunner

import mlkit.runner as runner
from mlkit.cli import main
from conftest import penguin_data

CLUSTER = {"task": "clustering", "target": "species", "profile": False, "serve_smoke_test": False, "n_iter": 3}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    "(run folder, run record, cache): the clustering chain on penguins, run once."
    from mlkit.cache import StageCache
    d = tmp_path_factory.mktemp("clustering")
    cache = StageCache(d / "cache")
    rec = runner.run_chain(dict(CLUSTER), out=d / "run", cache=cache, echo=lambda s: None)
    return d / "run", rec, cache


def test_the_chain_recovers_the_species(chain):
    run, rec, _ = chain
    assert rec["status"] == "succeeded"
    assert [s["status"] for s in rec["stages"]] == ["succeeded"] * 11
    test = rec["metrics"]["test"]
    assert test["adjusted_rand"] >= 0.5, test  # the clusters agree with the species the chain never saw
    assert {"silhouette", "davies_bouldin", "calinski_harabasz", "adjusted_rand", "stability"} <= set(test)
    assert {"silhouette", "adjusted_rand"} <= set(rec["metrics"]["validation"])
    problem = json.loads((run / "problem.json").read_text())
    assert (problem["task"], problem["metric"], problem["target"]) == ("clustering", "silhouette", "species")
    plan = pd.read_csv(run / "reports" / "feature_plan.csv").set_index("column")
    assert plan.loc["species", "role"] == "target" and "outside label" in plan.loc["species", "reason"]
    board = pd.read_csv(run / "reports" / "leaderboard.csv")
    assert {"kmeans", "gmm", "ward", "hdbscan", "baseline"} <= set(board.method)
    assert {"k", "sizes", "noise", "fit_seconds", "interpretability"} <= set(board.columns)
    assert board.score.iloc[0] > board.set_index("model").score["baseline"]  # a real clustering beats random labels
    for fig in ("05_metric_by_k", "07_projection", "07_silhouette", "09_crosstab"):
        assert (run / "reports" / "figures" / f"{fig}.png").exists(), fig


def test_the_package_assigns_clusters_in_batch_and_in_the_service(chain, tmp_path):
    from fastapi.testclient import TestClient
    from mlkit.serve import create_app
    run, _, _ = chain
    meta = json.loads((run / "model" / "metadata.json").read_text())
    assert meta["task"] == "clustering" and "distance" in meta["clustering"]["outputs"]
    rows = penguin_data().drop(columns="species").dropna().head(12)
    rows.to_csv(tmp_path / "new.csv", index=False)
    r = CliRunner().invoke(main, ["predict", str(run / "model"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "scored.csv")])
    assert r.exit_code == 0, r.output
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert scored.prediction.isin(meta["clustering"]["clusters"]).all() and (scored.distance >= 0).all()
    with TestClient(create_app(run / "model", log_url=f"sqlite:///{tmp_path}/log.sqlite")) as client:
        answer = client.post("/predict", json={"records": json.loads(rows.head(3).to_json(orient="records"))}).json()
    assert answer["predictions"] == scored.prediction.head(3).tolist()
    assert answer["distances"] == pytest.approx(scored.distance.head(3).tolist(), abs=1e-5)


def test_a_gaussian_mixture_package_gives_membership_probabilities(tmp_path):
    from mlkit.clusters import ClusterModel
    from mlkit.features import build_preprocessor
    from mlkit.package import build_package, load_package
    from mlkit.problem import define_problem
    from sklearn.pipeline import Pipeline
    df = penguin_data()
    problem = define_problem(df, "penguins", "species", task="clustering")
    pre, _ = build_preprocessor(df, "species", task="clustering")
    X = df.drop(columns="species")
    pipe = Pipeline([("preprocess", pre), ("model", ClusterModel("gmm", 3))]).fit(X)
    pkg = load_package(build_package(pipe, X, df.species, problem, {"validation": {}, "test": {}}, tmp_path / "model"))
    out = pkg.predict(X.head(5))
    assert list(out.columns) == ["prediction", "distance", "proba_0", "proba_1", "proba_2"]
    assert out.filter(like="proba_").sum(axis=1).round(6).eq(1).all()


def test_monitoring_reports_the_change_in_cluster_shares(chain):
    run, _, _ = chain
    m = json.loads((run / "monitoring" / "monitor.json").read_text())
    shares = m["clusters"]
    assert set(shares) >= {"reference", "current", "change", "largest_change", "total_variation"}
    assert sum(shares["reference"].values()) == pytest.approx(1, abs=1e-3)
    assert any("Cluster shares" in r for r in m["reasons"])
    assert "Cluster shares" in (run / "monitoring" / "monitor.html").read_text()


def test_a_second_run_is_fully_cached(chain, tmp_path, monkeypatch):
    run, first, cache = chain
    def no_kernel(*a, **k): raise AssertionError("a kernel was started for a cached stage")
    monkeypatch.setattr(runner, "_start_kernel", no_kernel)
    rec = runner.run_chain(dict(CLUSTER), out=tmp_path / "again", cache=cache, echo=lambda s: None)
    assert {s["status"] for s in rec["stages"]} == {"cached"}
    assert rec["metrics"] == first["metrics"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    df = penguin_data()
    df.to_csv(d / "penguins.csv", index=False)
    pd.DataFrame({"customer_id": range(60), "species": ["a", "b"]*30}).to_csv(d / "ids_only.csv", index=False)
    df.head(12).to_csv(d / "twelve.csv", index=False)
    return d


BAD = [
    (["-p", "data", "ids_only.csv"], "No column is usable for distances", "Check the data"),
    (["-p", "data", "twelve.csv"], "as many clusters as there are training rows", "Lower max_clusters"),
    (["-p", "max_clusters", "500"], "as many clusters as there are training rows", "Lower max_clusters"),
    (["-p", "min_clusters", "5", "-p", "max_clusters", "3"], "min_clusters (5) is above max_clusters (3)", "give a range"),
    (["-p", "metric", "accuracy"], "'accuracy' is a classification metric", "must be one of 'auto', 'silhouette'"),
    (["-p", "metric", "adjusted_rand"], "needs the outside label", "'silhouette'"),
    (["-p", "target", "empty"], "outside label 'empty' has no values", "Set 'target' to a column"),
    (["-p", "candidates", "kmeans,forest"], "forest do not serve clustering", "the candidates are: baseline, kmeans"),
]


@pytest.mark.parametrize("args,problem,remedy", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_clustering_input_is_refused_before_any_kernel(data_dir, tmp_path, monkeypatch, args, problem, remedy):
    def no_kernel(*a, **k): raise AssertionError("a kernel was started")
    monkeypatch.setattr(runner, "_start_kernel", no_kernel)
    if "empty" in args: pd.read_csv(data_dir / "penguins.csv").assign(empty=None).to_csv(tmp_path / "p.csv", index=False)
    data = [] if "data" in args else ["-p", "data", str(tmp_path / "p.csv") if "empty" in args else str(data_dir / "penguins.csv")]
    old = os.getcwd()
    os.chdir(data_dir)
    try: r = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "run"), "-p", "task", "clustering", *data, *args])
    finally: os.chdir(old)
    assert r.exit_code == 2, r.output
    assert problem in r.output and remedy in r.output, r.output
    assert not (tmp_path / "run").exists()


def test_params_describes_the_clustering_parameters():
    r = CliRunner().invoke(main, ["params"])
    assert r.exit_code == 0
    for words in ["min_clusters: ", "max_clusters: ", "'clustering'", "silhouette", "kmeans, gmm, ward, hdbscan"]:
        assert words in r.output, words


def test_a_clustering_without_an_outside_label_runs_to_its_clusters(tmp_path):
    rec = runner.run_chain({**CLUSTER, "target": ""}, out=tmp_path / "run", stop="07_evaluate", cache=False, echo=lambda s: None)
    assert rec["status"] == "succeeded"
    val = rec["metrics"]["validation"]
    assert val["silhouette"] > 0.25 and val.get("adjusted_rand") is None
    plan = pd.read_csv(tmp_path / "run" / "reports" / "feature_plan.csv")
    assert "species" in set(plan.column[plan.role != "dropped"])  # no outside label: the species is a feature like any other
