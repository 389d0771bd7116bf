"""The stage cache: a stage runs again exactly when something it depends on changed.

Runs go through `run_chain` in this process where a test must see that no kernel starts, and through
the `mlkit` command where the install and real concurrency matter. Chains stop early (`stop=`) and use
two candidates and a short search, to keep the file to about two minutes."""
from __future__ import annotations
import json, os, shutil, subprocess, sys, threading
from pathlib import Path

import pandas as pd
import pytest

import mlkit.runner as runner
from mlkit.cache import StageCache
from conftest import penguin_data

from conftest import FAST
MLKIT = str(Path(sys.executable).with_name("mlkit"))


def statuses(rec) -> dict:
    return {s["name"]: s["status"] for s in rec["stages"]}


def own_copy(store, tmp_path) -> StageCache:
    """A copy of the session's store, for a test that re-runs a stage whose key is unchanged: the re-run
    stores a model with other bytes (skops files differ run to run), which would re-key every later stage
    for the tests after it."""
    shutil.copytree(store.root, tmp_path / "copy")
    return StageCache(tmp_path / "copy")


def no_kernel(*a, **k):
    raise AssertionError("a kernel was started for a stage whose results are cached")


def test_an_unchanged_rerun_is_all_cached_and_starts_no_kernel(cold, store, monkeypatch):
    d, first = cold
    monkeypatch.setattr(runner, "_start_kernel", no_kernel)
    rec = runner.run_chain(dict(FAST), out=d / "again", cache=store, echo=lambda s: None)
    assert set(statuses(rec).values()) == {"cached"}
    assert rec["metrics"] == first["metrics"]
    for s in rec["stages"]:
        assert s["from"] == str(d / "cold") and s["key"] == next(f["key"] for f in first["stages"] if f["name"] == s["name"])
    # the folder is complete and self-contained: the same files, readable without the cache or the first run
    assert sorted(p.relative_to(d / "again") for p in (d / "again").rglob("*") if p.name != "run.json") == \
           sorted(p.relative_to(d / "cold") for p in (d / "cold").rglob("*") if p.name != "run.json")
    assert (d / "again" / "05_select.ipynb").exists()


def test_an_unchanged_rerun_through_the_command_imports_no_data_library(cold, store, tmp_path):
    """`mlkit run` checks parameters and copies cached stages without numpy, pandas or scikit-learn (their import
    would be most of an unchanged re-run's time): the modules it reads name them through `mlkit.core.lazy_import`."""
    heavy = {"numpy", "pandas", "sklearn", "scipy", "matplotlib"}
    code = (f"import sys, traceback\nheavy = {heavy!r}\n"
            "def audit(event, args):  # who imports one of them first: shown in the failure's message\n"
            "    if event == 'import' and args[0].split('.')[0] in heavy and not heavy & set(sys.modules):\n"
            "        traceback.print_stack(file=sys.stdout)\n"
            "sys.addaudithook(audit)\nfrom mlkit.cli import main\ntry: main()\nexcept SystemExit as e: print('exit', e.code)\n"
            "print('heavy', sorted({m.split('.')[0] for m in sys.modules} & heavy))")
    params = [a for k, v in FAST.items() for a in ("-p", k, str(v).lower() if isinstance(v, bool) else str(v))]
    env = {**os.environ, "MLKIT_CACHE": str(store.root)}
    # the first command remembers what papermill read from each template's parameters cell beside this cache (`cold`
    # ran in this process, and remembered it beside $MLKIT_CACHE): the second one is what a user's re-run does
    for out in ("first", "same"):
        r = subprocess.run([sys.executable, "-c", code, "run", "--out", str(tmp_path / out), *params], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
        assert "exit 0" in r.stdout, r.stdout + r.stderr
        assert set(statuses(json.loads((tmp_path / out / "run.json").read_text())).values()) == {"cached"}
    assert "heavy []" in r.stdout, r.stdout


def test_a_signal_after_the_last_stage_leaves_a_run_that_resumes_from_it(tmp_path):
    """Interrupted in the last stage's bookkeeping (here, storing it in the cache), after its work succeeded: the record
    says interrupted, and its resume command names that stage (resuming redoes or restores it), not the whole chain."""
    class Interrupted(StageCache):
        def store(self, *a, **k): raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        runner.run_chain({**FAST}, out=tmp_path / "r", cache=Interrupted(tmp_path / "c"), stop="01_define", echo=lambda s: None)
    rec = json.loads((tmp_path / "r" / "run.json").read_text())
    assert rec["status"] == "interrupted" and [s["status"] for s in rec["stages"]] == ["succeeded"], rec
    assert rec["error"]["resume"].endswith("--from 01_define"), rec["error"]


def test_a_tuning_setting_reruns_exactly_the_stages_from_08(cold, store):
    d, _ = cold
    rec = runner.run_chain({**FAST, "n_iter": 4}, out=d / "tuned", cache=store, echo=lambda s: None)
    st = statuses(rec)
    assert [n for n, s in st.items() if s == "cached"] == [f"0{i}_{n}" for i, n in
                                                          enumerate(["define", "prepare", "features", "split", "select",
                                                                     "train", "evaluate"], 1)]
    assert [n for n, s in st.items() if s == "succeeded"] == ["08_tune", "09_test", "10_deploy", "11_monitor"]


def test_new_rows_in_the_same_file_rerun_everything(store, tmp_path):
    data = tmp_path / "birds.csv"
    penguin_data().to_csv(data, index=False)
    p = {**FAST, "data": str(data)}
    runner.run_chain(p, out=tmp_path / "a", cache=store, stop="04_split", echo=lambda s: None)
    pd.concat([penguin_data(), penguin_data().head(30)]).to_csv(data, index=False)  # same path, same mtime or not: new content
    os.utime(data, (0, 0))
    rec = runner.run_chain(p, out=tmp_path / "b", cache=store, stop="04_split", echo=lambda s: None)
    assert set(statuses(rec).values()) == {"succeeded"}


def test_editing_a_code_cell_of_05_reruns_from_05(cold, store, tmp_path, monkeypatch):
    d, _ = cold
    from mlkit.stages import templates_dir
    mine = tmp_path / "templates"; shutil.copytree(templates_dir(), mine)
    nb = json.loads((mine / "05_select.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "chosen = choose(" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]).replace("chosen = choose(board, problem)",
                                                     "chosen = {**choose(board, problem), 'edited': True}")
    (mine / "05_select.ipynb").write_text(json.dumps(nb))
    monkeypatch.setenv("MLKIT_TEMPLATES", str(mine))
    rec = runner.run_chain(dict(FAST), out=d / "edited", cache=store, stop="07_evaluate", echo=lambda s: None)
    st = statuses(rec)
    assert [st[s] for s in ["01_define", "02_prepare", "03_features", "04_split"]] == ["cached"] * 4
    assert [st[s] for s in ["05_select", "06_train", "07_evaluate"]] == ["succeeded"] * 3


def test_a_damaged_entry_is_noticed_and_the_stage_runs_again(cold, store, tmp_path):
    d, first = cold
    store = own_copy(store, tmp_path)  # its objects are hard-linked into the cold run's files
    key = next(s["key"] for s in first["stages"] if s["name"] == "03_features")
    entry = store.lookup(key)
    obj = store._object(entry["files"]["models/preprocessor.skops"]["sha256"])
    os.chmod(obj, 0o644); obj.write_bytes(b"not a model")
    rec = runner.run_chain(dict(FAST), out=d / "mended", cache=store, stop="04_split", echo=lambda s: None)
    assert statuses(rec) == {"01_define": "cached", "02_prepare": "cached", "03_features": "succeeded", "04_split": "cached"}
    assert store.restore(key, d / "check") is not None  # stored again, whole


def test_two_runs_sharing_one_cache_at_once_both_succeed(tmp_path):
    env = {**os.environ, "MLKIT_CACHE": str(tmp_path / "shared"), "MPLBACKEND": "Agg"}
    def run(out, *extra):
        return subprocess.Popen([MLKIT, "run", "--to", "04_split", "--out", out, "-p", "profile", "false", *extra],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs = [run("same1"), run("same2"), run("other", "-p", "test_size", "0.25")]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    r = subprocess.run([MLKIT, "run", "--to", "04_split", "--out", "later", "-p", "profile", "false"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "later" / "run.json").read_text())
    assert set(statuses(rec).values()) == {"cached"}
    for name in ("same1", "same2", "later"):
        assert pd.read_parquet(tmp_path / name / "data/processed/splits.parquet").equals(
            pd.read_parquet(tmp_path / "same1" / "data/processed/splits.parquet"))


def test_no_cache_runs_everything_and_keeps_nothing(tmp_path):
    store = StageCache(tmp_path / "c")
    rec = runner.run_chain({**FAST}, out=tmp_path / "r", cache=False, stop="02_prepare", echo=lambda s: None)
    assert set(statuses(rec).values()) == {"succeeded"} and store.info()["entries"] == 0


def test_force_reruns_from_a_stage(cold, store, tmp_path):
    d, _ = cold
    store = own_copy(store, tmp_path)
    rec = runner.run_chain(dict(FAST), out=d / "forced", cache=store, stop="04_split", force="03", echo=lambda s: None)
    assert statuses(rec) == {"01_define": "cached", "02_prepare": "cached", "03_features": "succeeded", "04_split": "succeeded"}


def test_cache_bad_input(tmp_path):
    blocker = tmp_path / "a-file"; blocker.write_text("x")
    env = {**os.environ, "MLKIT_CACHE": str(blocker / "cache")}
    r = subprocess.run([MLKIT, "run", "--out", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "cannot be written" in r.stderr and "--no-cache" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()
    r = subprocess.run([MLKIT, "run", "--force", "tunning", "--out", "run"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "There is no stage 'tunning'" in r.stderr and not (tmp_path / "run").exists()


def test_a_full_cache_stops_the_run_with_a_clear_message(tmp_path):
    mnt = tmp_path / "small"; mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("no tmpfs can be mounted here to fill a cache folder")
    try:
        env = {**os.environ, "MLKIT_CACHE": str(mnt), "MPLBACKEND": "Agg"}
        r = subprocess.run([MLKIT, "run", "--to", "03_features", "--out", "run"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 2 and "is full" in r.stderr and "Traceback" not in r.stderr, r.stderr
        rec = json.loads((tmp_path / "run" / "run.json").read_text())
        assert rec["status"] == "failed" and "resume" in rec["error"]  # complete as far as it went, and says so
    finally:
        subprocess.run(["umount", str(mnt)])


def test_cache_info_and_clear(tmp_path):
    env = {**os.environ, "MLKIT_CACHE": str(tmp_path / "c")}
    StageCache(tmp_path / "c").check_writable()
    r = subprocess.run([MLKIT, "cache", "info"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and str(tmp_path / "c") in r.stdout and "0 entries" in r.stdout
    r = subprocess.run([MLKIT, "cache", "clear"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "removed 0 entries" in r.stdout
