"""A user's own data on the first try: relative paths, CSV as spreadsheets export it, Excel, databases.

(`test_chain.py::test_own_csv_with_string_category_and_missing_values` runs the whole chain on a German
spreadsheet export named by a relative path.)

Each test works the way a user types it: `mlkit` (or `papermill`) in a subprocess, started in the
folder that holds the data, with the path as typed."""
from __future__ import annotations
import hashlib, json, os, sqlite3, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import penguin_data

BIN = Path(sys.executable).parent
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
PG_URL = os.environ.get("MLKIT_TEST_POSTGRES_URL")


def run(*args, cwd, timeout=900):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def german_export(path):
    "Penguins as a German spreadsheet exports them: semicolons, decimal commas, Windows-1252, umlauts."
    df = penguin_data().rename(columns={"body_mass_g": "Körpermasse_g"})
    df["island"] = df["island"].replace({"Dream": "Traum-Insel"})
    df.to_csv(path, sep=";", decimal=",", index=False, encoding="cp1252")
    return path


def test_plain_papermill_on_a_template_reads_relative_paths(tmp_path):
    work = tmp_path / "work"; work.mkdir()
    german_export(work / "birds.csv")
    for stage in ("01_define", "02_prepare"):
        r = run("papermill", str(TEMPLATES / f"{stage}.ipynb"), f"{stage}.out.ipynb", "-p", "data", "birds.csv",
                "-p", "target", "species", "-p", "run_dir", "state", cwd=work)
        assert r.returncode == 0, r.stderr[-3000:]
    problem = json.loads((work / "state" / "problem.json").read_text())
    assert problem["data"] == str(work / "birds.csv") and problem["source"]["sha256"] == sha(work / "birds.csv")
    assert len(pd.read_parquet(work / "state" / "data" / "processed" / "clean.parquet")) == 344


def test_a_params_file_names_data_relative_to_its_own_folder(tmp_path):
    study = tmp_path / "study"; (study / "data").mkdir(parents=True)
    german_export(study / "data" / "birds.csv")
    (study / "problem.yaml").write_text("data: data/birds.csv\ntarget: species\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"; elsewhere.mkdir()
    r = run("mlkit", "run", "--params", "../study/problem.yaml", "--to", "02_prepare", "--out", "run", cwd=elsewhere)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((elsewhere / "run" / "run.json").read_text())
    assert rec["data"]["location"] == str(study / "data" / "birds.csv")


def test_an_excel_sheet_is_data(tmp_path):
    with pd.ExcelWriter(tmp_path / "field notes.xlsx") as xl:
        pd.DataFrame({"note": ["read me first"]}).to_excel(xl, sheet_name="README", index=False)
        penguin_data().to_excel(xl, sheet_name="birds", index=False)
    r = run("mlkit", "run", "-p", "data", "field notes.xlsx", "-p", "sheet", "birds", "--to", "02_prepare",
            "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["data"]["kind"] == "excel" and rec["data"]["sheet"] == "birds" and rec["data"]["rows"] == 344
    log = json.loads((tmp_path / "run" / "reports" / "cleaning_log.json").read_text())
    assert log[0]["step"] == "read Excel" and "'README', 'birds'" in log[0]["detail"]
    r = run("mlkit", "run", "-p", "data", "field notes.xlsx", "-p", "sheet", "fish", "--out", "bad", cwd=tmp_path)
    assert r.returncode == 2 and "Its sheets are: 'README', 'birds'" in r.stderr and not (tmp_path / "bad").exists()


def test_a_database_table_is_read_once_per_run(tmp_path):
    with sqlite3.connect(tmp_path / "shop.db") as con: penguin_data().to_sql("penguins", con, index=False)
    r = run("mlkit", "run", "-p", "data", "sqlite:///shop.db", "-p", "table", "penguins", "--to", "02_prepare",
            "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["data"]["location"] == f"sqlite:///{tmp_path}/shop.db" and rec["data"]["rows"] == 344
    assert (tmp_path / "run" / "data" / "raw" / "source.parquet").exists()
    with sqlite3.connect(tmp_path / "shop.db") as con: con.execute("delete from penguins where island = 'Dream'")
    # a re-run of the same folder sees the rows the run first read, not the changed table
    r = run("mlkit", "run", "--out", "run", "--from", "01_define", "--to", "04_split", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.loads((tmp_path / "run" / "run.json").read_text())
    assert again["data"]["sha256"] == rec["data"]["sha256"] and again["data"]["rows"] == 344
    assert json.loads((tmp_path / "run" / "problem.json").read_text())["n_rows"] == 344
    # a query works too; a missing table is refused before any kernel starts
    r = run("mlkit", "run", "-p", "data", "sqlite:///shop.db", "-p", "query", "select * from penguins where year > 2007",
            "--to", "01_define", "--out", "q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "q" / "run.json").read_text())["data"]["query"].startswith("select")
    r = run("mlkit", "run", "-p", "data", "sqlite:///shop.db", "-p", "table", "fish", "--out", "bad", cwd=tmp_path)
    assert r.returncode == 2 and "there is no table 'fish'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not PG_URL, reason="set MLKIT_TEST_POSTGRES_URL to a PostgreSQL database to run this")
def test_a_postgres_password_reaches_no_file_and_no_message(tmp_path):
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    engine = create_engine(PG_URL)
    penguin_data().to_sql("mlkit_penguins", engine, index=False, if_exists="replace")
    engine.dispose()
    secret = "s3cr3t-Pa55"  # the CI server trusts loopback, so any password connects
    url = make_url(PG_URL).set(password=secret).render_as_string(hide_password=False)
    r = run("mlkit", "run", "-p", "data", url, "-p", "table", "mlkit_penguins", "--to", "03_features", "--out", "run",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert secret not in r.stdout + r.stderr
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file(): assert secret.encode() not in f.read_bytes(), f
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["data"]["rows"] == 344 and "***" in rec["data"]["location"]
    bad = url.replace("mlkit_penguins", "x")
    r = run("mlkit", "run", "-p", "data", bad, "-p", "table", "no_such_table", "--out", "bad", cwd=tmp_path)
    assert r.returncode == 2 and secret not in r.stderr and "no_such_table" in r.stderr


def test_predict_and_monitor_take_excel_and_database_inputs(clf_package, tmp_path):
    new = penguin_data().drop(columns="species").head(40)
    new.to_excel(tmp_path / "new.xlsx", sheet_name="today", index=False)
    with sqlite3.connect(tmp_path / "new.db") as con: penguin_data().head(80).to_sql("birds", con, index=False)
    model = os.path.relpath(clf_package, tmp_path)  # a relative path to the model, as typed
    r = run("mlkit", "predict", model, "new.xlsx", "--sheet", "today", "--out", "scored.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path / "scored.csv")) == 40
    r = run("mlkit", "predict", model, "sqlite:///new.db", "--query", "select * from birds", "--keep-extra",
            "--out", "scored.parquet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(pd.read_parquet(tmp_path / "scored.parquet")) == 80
    r = run("mlkit", "monitor", model, "--current", "sqlite:///new.db", "--table", "birds", "--out", "mon", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "mon" / "monitor.json").read_text())["current"]["rows"] == 80
