"""Numbers and dates written as text: read in 02_prepare, logged, and read the same way when the model is used."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))
N = 120


def raw_frame(n: int = N, seed: int = 0, inf: bool = True) -> pd.DataFrame:
    """A frame as a spreadsheet export writes it: every number and date as text for people, and a target `y`.

    `inf=False` leaves the ratio finite: cleaning turns ±inf into missing values, but scoring refuses them
    (a record must hold finite numbers or nothing), so files to score are made without."""
    rng = np.random.default_rng(seed)
    share = rng.integers(0, 1000, n) / 10           # 0.0 .. 99.9 (%)
    amount = rng.integers(0, 5_000_000, n) / 2      # up to 2,499,999.5
    price = rng.integers(100, 300_000, n) / 100     # up to 2,999.99
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    df = pd.DataFrame({
        "share": [f"{v:g}%" for v in share],
        "amount": [f"{v:,.1f}" for v in amount],                                                     # 1,234,567.5
        "price": [f"{v:,.2f}".replace(",", " ").replace(".", ",") for v in price],                  # 1 234,56
        "weight": [f"{v:.2f}".replace(".", ",") for v in rng.uniform(1, 9, n)],                     # 3,14
        "seen": day.strftime("%d/%m/%Y"),                                                             # 31/01/2024
        "zip": [f"{v:05d}" for v in rng.integers(0, 3000, n)],                                        # 00123
        "part": [f"{v // 1000},{v % 1000:03d}" for v in rng.integers(1000, 9999, n)],                # 1,234, a code
        "ratio": np.where((np.arange(n) % 10 == 3) & inf, np.inf, rng.uniform(0, 1, n)),
    })
    df.loc[5, "zip"] = "unknown"  # a placeholder keeps the CSV reader from reading the codes as numbers
    df["y"] = 4 * share / 100 + amount / 1e6 + price / 1000 + rng.normal(0, 0.05, n)
    return df


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    "01_define and 02_prepare run on the raw CSV; the raw frame and the run folder."
    d = tmp_path_factory.mktemp("conversions")
    raw = raw_frame()
    raw.to_csv(d / "raw.csv", index=False)
    out = d / "run"
    r = subprocess.run([MLKIT, "run", "--to", "02_prepare", "-p", "data", str((d / "raw.csv").absolute()), "-p", "target", "y",
                        "-p", "keep_text", "part", "-p", "profile", "false", "--out", str(out)],
                       capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return raw, out


def test_the_cleaning_log_says_what_was_recognised(prepared):
    raw, out = prepared
    log = pd.DataFrame(json.loads((out / "reports" / "cleaning_log.json").read_text()))
    first = log[~log.step.str.startswith("read")].drop_duplicates("column").set_index("column")
    assert first.loc["share", "step"] == "text to number" and first.loc["share", "detail"].startswith("percentages (e.g. ")
    assert first.loc["amount", "detail"].startswith("text with commas as thousands separators")
    assert first.loc["price", "detail"].startswith("text with spaces as thousands separators and decimal commas")
    assert first.loc["weight", "detail"].startswith("text with decimal commas")
    assert first.loc["seen", "step"] == "text to date" and "day first" in first.loc["seen", "detail"]
    assert first.loc["zip", "step"] == "kept as text" and "leading zeros" in first.loc["zip", "detail"]
    assert first.loc["part", "step"] == "kept as text" and "keep_text" in first.loc["part", "detail"]
    assert (first.loc["ratio", "step"], first.loc["ratio", "rows"]) == ("infinite to missing", N // 10)
    assert (first.loc[["share", "amount", "price", "weight", "seen"], "rows"] == N).all()
    conversions = json.loads((out / "reports" / "conversions.json").read_text())
    assert {c: v["kind"] for c, v in conversions.items()} == {
        "share": "percent", "amount": "thousands", "price": "thousands", "weight": "decimal_comma", "seen": "date"}


def test_the_clean_data_holds_numbers_and_dates(prepared):
    raw, out = prepared
    clean = pd.read_parquet(out / "data" / "processed" / "clean.parquet")
    for c in ["share", "amount", "price", "weight", "ratio"]:
        assert pd.api.types.is_float_dtype(clean[c]), c
    assert pd.api.types.is_datetime64_any_dtype(clean.seen)
    assert clean.zip.tolist() == raw.zip.tolist()  # codes such as "00123" keep their leading zeros
    assert clean.part.tolist() == raw.part.tolist()
    expect = {"share": [float(v.rstrip("%")) / 100 for v in raw.share],
              "amount": [float(v.replace(",", "")) for v in raw.amount],
              "price": [float(v.replace(" ", "").replace(",", ".")) for v in raw.price],
              "weight": [float(v.replace(",", ".")) for v in raw.weight]}
    for c, v in expect.items():
        np.testing.assert_allclose(clean[c].to_numpy(), v, err_msg=c)
    assert clean.seen.dt.strftime("%d/%m/%Y").tolist() == raw.seen.tolist()
    assert clean.ratio.isna().sum() == N // 10 and np.isfinite(clean.ratio.dropna()).all()


@pytest.fixture(scope="module")
def package(prepared, tmp_path_factory):
    "A model trained on the clean data and packaged with the run's conversions, as 10_deploy does."
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from mlkit.features import build_preprocessor
    from mlkit.package import build_package
    from mlkit.runfolder import RunFolder
    run = RunFolder(prepared[1])
    clean = run.load_frame("clean")
    X, y = clean.drop(columns="y"), clean["y"]
    pipe = Pipeline([("preprocess", build_preprocessor(clean, "y")[0]), ("model", Ridge())]).fit(X, y)
    path = build_package(pipe, X, y, run.problem(), {}, tmp_path_factory.mktemp("pkg") / "model",
                         conversions=run.load_json("conversions"))
    return path, pipe, X


def test_a_raw_file_scores_as_the_clean_data(prepared, package, tmp_path):
    from mlkit.batch import predict_file
    raw, _ = prepared
    path, pipe, X = package
    raw.drop(columns="y").head(30).replace(np.inf, np.nan).to_csv(tmp_path / "raw.csv", index=False)
    X.head(30).to_csv(tmp_path / "clean.csv", index=False)
    from_raw = pd.read_csv(predict_file(path, tmp_path / "raw.csv", tmp_path / "raw_scored.csv")).prediction
    from_clean = pd.read_csv(predict_file(path, tmp_path / "clean.csv", tmp_path / "clean_scored.csv")).prediction
    np.testing.assert_allclose(from_raw, from_clean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(from_raw, pipe.predict(X.head(30)), rtol=0, atol=1e-12)


def test_45_percent_as_text_scores_as_the_number(package, tmp_path):
    from fastapi.testclient import TestClient
    from mlkit.package import load_package
    from mlkit.serve import create_app
    path, pipe, X = package
    row = X.iloc[[0]].assign(share=0.45)
    as_text = row.astype(object).assign(share="45%")
    pkg = load_package(path)
    assert pkg.predict(as_text).prediction.tolist() == pkg.predict(row).prediction.tolist() == pipe.predict(row).tolist()
    client = TestClient(create_app(path, log_url=tmp_path / "log.sqlite"))
    record = json.loads(row.to_json(orient="records", date_format="iso"))[0]
    answers = [client.post("/predict", json={"records": [{**record, "share": v}]}) for v in ("45%", 0.45)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert answers[0].json()["predictions"] == answers[1].json()["predictions"]
    bad = client.post("/predict", json={"records": [{**record, "share": "lots"}]})
    assert bad.status_code == 422 and "or text written like '12.5%'" in bad.json()["message"]


def test_monitoring_reads_a_raw_file(prepared, package, tmp_path):
    from mlkit.monitor import run_monitor
    path, _, _ = package
    raw_frame(60, seed=1, inf=False).to_csv(tmp_path / "new.csv", index=False)
    result = run_monitor(path, tmp_path / "new.csv", out_dir=None, report=False)
    assert result["current"]["rows"] == 60 and result["performance"]["rows"] == 60
    assert {"share", "amount", "price", "weight"} <= set(result["columns"])
