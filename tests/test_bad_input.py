"""Bad input, across `mlkit run`, `predict`, `serve` and `monitor`: each gets a clear refusal.

Every case checks four things: the exit status (2: the input cannot be used), a message that names
the problem, a message that says what to do, no raw traceback; and that every input file is
byte-for-byte unchanged afterwards. The commands run in-process (click's CliRunner), as a user's
shell would see them; `test_a_refusal_in_a_real_shell` checks the same through a subprocess.
"""
from __future__ import annotations
import hashlib, json, os, sqlite3, subprocess, sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mlkit.cli import main
from conftest import penguin_data


def digest(folder: Path) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, clf_package):
    "A folder of inputs a user might bring, good and bad, and a model package."
    d = tmp_path_factory.mktemp("inputs")
    df = penguin_data()
    df.to_csv(d / "penguins.csv", index=False)
    df.sample(8, random_state=0).to_csv(d / "eight_rows.csv", index=False)
    df.assign(species=None).to_csv(d / "no_labels.csv", index=False)
    pd.concat([df, df.head(4).assign(species="Macaroni")]).to_csv(d / "rare_class.csv", index=False)
    df.assign(one="x").to_csv(d / "one_class.csv", index=False)
    df.to_csv(d / "semicolons.csv", sep=";", decimal=",", index=False)
    (d / "empty.csv").write_text("")
    (d / "blank_lines.csv").write_text("\n\n\n")
    (d / "header_only.csv").write_text("species,island\n")
    (d / "broken.parquet").write_text("this is not parquet")
    (d / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0 an old workbook")
    (d / "renamed.xlsx").write_text("a text file renamed")
    (d / "notes.json").write_text("{}")
    df.to_excel(d / "book.xlsx", sheet_name="birds", index=False)
    with sqlite3.connect(d / "shop.db") as con: df.to_sql("penguins", con, index=False)
    from mlkit.predlog import PredictionLog
    PredictionLog(d / "empty_log.sqlite").engine.dispose()  # a prediction log no request has reached yet
    (d / "list.yaml").write_text("- a\n- list\n")
    (d / "broken.yaml").write_text("data: [unclosed\n")
    (d / "folder").mkdir()
    df.drop(columns=["species", "bill_length_mm"]).head(20).to_csv(d / "missing_column.csv", index=False)
    df.drop(columns="species").head(20).assign(note="x").to_csv(d / "extra_column.csv", index=False)
    (d / "done").mkdir()
    (d / "done" / "run.json").write_text(json.dumps({"status": "succeeded", "params": {}, "stages": []}))
    (d / "busy").mkdir()
    (d / "busy" / "notes.txt").write_text("my own files")
    return d, clf_package


def run_cmd(*args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try: return CliRunner().invoke(main, list(args))
    finally: os.chdir(old)


# (command line, words naming the problem, words saying what to do)
RUN = [
    (["-p", "data", "nowhere.csv"], "No data file at", "Give the path of a CSV"),
    (["-p", "data", "folder"], "is a folder", "Give the path of a CSV"),
    (["-p", "data", "empty.csv"], "is empty (0 bytes)", "Check that it is the file you meant"),
    (["-p", "data", "blank_lines.csv"], "has no columns", "empty or holds only blank lines"),
    (["-p", "data", "header_only.csv"], "has 0 rows", "Check that it is the data you meant"),
    (["-p", "data", "broken.parquet"], "Could not read", "Check that the file is complete"),
    (["-p", "data", "old.xls"], "old-style Excel workbook", "Save it as .xlsx or CSV"),
    (["-p", "data", "renamed.xlsx"], "is not an Excel workbook", "save it as .xlsx or CSV"),
    (["-p", "data", "notes.json"], "it is JSON", "Save it as .xlsx or CSV"),
    (["-p", "data", "book.xlsx", "-p", "sheet", "fish"], "has no sheet 'fish'", "Its sheets are: 'birds'"),
    (["-p", "data", "penguins.csv", "-p", "sheet", "birds"], "applies to an Excel workbook", "'sheet'"),
    (["-p", "data", "sqlite:///shop.db"], "exactly one of 'query'", "or 'table'"),
    (["-p", "data", "sqlite:///nowhere.db", "-p", "table", "t"], "No SQLite database at", "Check the path"),
    (["-p", "data", "sqlite:///shop.db", "-p", "table", "fish"], "there is no table 'fish'", "Check the 'table' parameter"),
    (["-p", "data", "sqlite:///shop.db", "-p", "query", "SELEKT 1"], "Could not read a query", "Check the 'query' parameter"),
    (["-p", "data", "penguins.csv", "-p", "query", "select 1"], "applies to a database", "Give 'data' as a URL"),
    (["-p", "data", "penguins.csv", "-p", "csv_options", "{delimiter: ';'}"], "unknown option(s) 'delimiter'", "It may set: sep"),
    (["-p", "data", "penguins.csv", "-p", "csv_options", "{encoding: klingon}"], "no known encoding", "e.g. 'utf-8'"),
    (["-p", "data", "semicolons.csv", "-p", "csv_options", "{sep: ','}", "-p", "target", "species"],
     "is not in", "the delimiter was not detected: set csv_options"),
    (["-p", "target", "mass"], "The target column 'mass' is not in", "Set the 'target' parameter"),
    (["-p", "data", "no_labels.csv"], "every row is missing", "Check that 'target' names the column you mean"),
    (["-p", "data", "eight_rows.csv"], "Only 8 rows have a target: too few to split", "Collect more rows"),
    (["-p", "data", "rare_class.csv"], "'Macaroni'", "`-p rare_classes drop`"),
    (["-p", "data", "one_class.csv", "-p", "target", "one"], "single class", "Pick another target"),
    (["-p", "task", "regression"], "is not numeric", "Use task='classification'"),
    (["-p", "task", "clasify"], "must be one of", "Did you mean 'classification'"),
    (["-p", "metric", "rmse"], "for classification", "must be one of"),
    (["-p", "success_threshold", "1.5"], "must lie in [0, 1]", "Got 1.5"),
    (["-p", "targt", "species"], "Unknown parameter 'targt'", "did you mean 'target'?"),
    (["-p", "seed", "many"], "must be of type int", "Got 'many'"),
    (["-p", "outliers", "cut"], "must be one of 'flag', 'clip', 'drop', 'none'", "Got 'cut'"),
    (["-p", "rare_classes", "keep"], "must be one of 'refuse', 'drop'", "Got 'keep'"),
    (["-p", "search", "grd"], "must be one of", "Did you mean 'grid'"),
    (["-p", "candidates", "linear,forrest"], "'forrest' is not among them", "Did you mean 'forest'"),
    (["-p", "test_size", "0.5", "-p", "validation_size", "0.4"], "leaves less than 20%", "Lower one of them"),
    (["-p", "drop_columns", "beak"], "'beak' is not a column", "The columns are"),
    (["-p", "group_column", "nest"], "'nest' is not a column", "The columns are"),
    (["-p", "max_categories", "1"], "must be an int in the range [2, inf)", "Got 1"),
    (["-p", "cv_folds", "1"], "must be an int in the range [2, inf)", "Got 1"),
    (["-p", "keep_text", "zipp"], "'zipp' is not a column", "The columns are"),
    (["-p", "drop_columns", "species"], "include the target 'species'", "Leave it out of 'drop_columns'"),
    (["-p", "monitor_data", "nowhere.parquet"], "No data file at", "Give the path"),
    (["--params", "nowhere.yaml"], "No parameters file at", "Check the --params path"),
    (["--params", "list.yaml"], "must hold a mapping", "`target: species`"),
    (["--params", "broken.yaml"], "is not valid YAML", "line"),
    (["--from", "nowhere"], "There is no stage 'nowhere'", "The stages are"),
    (["--from", "05", "--to", "02"], "comes before", "--from"),
]


@pytest.mark.parametrize("args,problem,remedy", RUN, ids=[" ".join(a) for a, _, _ in RUN])
def test_run_refuses_bad_input_before_any_kernel_starts(inputs, tmp_path, args, problem, remedy):
    d, _ = inputs
    before = digest(d)
    r = run_cmd("run", "--out", str(tmp_path / "run"), *args, cwd=d)
    assert r.exit_code == 2, r.output
    assert problem in r.output and remedy in r.output, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "run").exists(), "a refused run leaves no folder behind"
    assert digest(d) == before


@pytest.mark.parametrize("out,problem,remedy", [
    ("busy", "is not empty and holds no mlkit run", "Choose a new or empty folder"),
    ("done", "already holds a succeeded run", "--from STAGE"),
])
def test_run_never_writes_over_other_files(inputs, out, problem, remedy):
    d, _ = inputs
    before = digest(d)
    r = run_cmd("run", "--out", out, cwd=d)
    assert r.exit_code == 2 and problem in r.output and remedy in r.output, r.output
    assert digest(d) == before


def model_cases(d: Path, model: Path):
    m = str(model)
    return [
        (["predict", "nowhere", "penguins.csv", "--out", "o.csv"], "No model package at", "give the folder written by 10_deploy"),
        (["predict", "folder", "penguins.csv", "--out", "o.csv"], "is not a complete model package", "Rebuild it"),
        (["predict", m, "nowhere.csv", "--out", "o.csv"], "No data file at", "Give the path"),
        (["predict", m, "missing_column.csv", "--out", "o.csv"], "bill_length_mm", "Add them"),
        (["predict", m, "extra_column.csv", "--out", "o.csv"], "note", "--keep-extra"),
        (["predict", m, "penguins.csv", "--out", "o.txt"], "must end in", ".csv"),
        (["predict", m, "sqlite:///shop.db", "--out", "o.csv"], "exactly one of 'query'", "or 'table'"),
        (["predict", m, "book.xlsx", "--sheet", "fish", "--out", "o.csv"], "has no sheet 'fish'", "Its sheets are"),
        (["serve", "nowhere"], "No model package at", "give the folder written by 10_deploy"),
        (["serve", "folder"], "is not a complete model package", "Rebuild it"),
        (["monitor", "nowhere", "--current", "penguins.csv", "--out", "mon"], "No model package at", "10_deploy"),
        (["monitor", m, "--current", "nowhere.csv", "--out", "mon"], "No data file at", "Give the path"),
        (["monitor", m, "--current", "empty_log.sqlite", "--out", "mon"], "holds no predictions yet", "nothing to monitor"),
        (["monitor", m, "--current", "sqlite:///shop.db", "--table", "fish", "--out", "mon"], "no table 'fish'", "Check the 'table'"),
        (["monitor", m, "--current", "missing_column.csv", "--out", "mon"], "bill_length_mm", "Add them"),
    ]


def test_predict_serve_and_monitor_refuse_bad_input(inputs):
    d, model = inputs
    for args, problem, remedy in model_cases(d, model):
        before, model_before = digest(d), digest(model)
        r = run_cmd(*args, cwd=d)
        label = " ".join(args)
        assert r.exit_code == 2, f"{label}: {r.output}"
        assert problem in r.output and remedy in r.output, f"{label}: {r.output}"
        assert "Traceback" not in r.output, label
        assert digest(d) == before and digest(model) == model_before, label
        assert not (d / "o.csv").exists() and not (d / "mon").exists(), label


def test_a_refusal_in_a_real_shell(inputs):
    "The same refusal through the installed `mlkit` command: status 2, one line, no traceback."
    d, _ = inputs
    r = subprocess.run([str(Path(sys.executable).with_name("mlkit")), "run", "-p", "data", "nowhere.csv"], cwd=d,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "No data file at" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
