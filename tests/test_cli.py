"""The `mlkit` command: help, version, parameters, and bad input refused before any kernel starts."""
import json, os, subprocess, sys, zipfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mlkit import __version__
from mlkit.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_version_and_help():
    r = invoke("--version")
    assert r.exit_code == 0 and __version__ in r.output
    for cmd in ["run", "serve", "predict", "monitor", "params", "templates"]:
        r = invoke(cmd, "--help")
        assert r.exit_code == 0, cmd
        assert f"{cmd} [OPTIONS]" in r.output
        assert main.commands[cmd].help.split(".")[0] in " ".join(r.output.split())  # its docstring, wrapped


def test_params_lists_every_template_parameter():
    r = invoke("params")
    assert r.exit_code == 0
    for name in ["data", "target", "task", "metric", "success_threshold", "seed", "run_dir"]:
        assert f"\n{name}: " in "\n" + r.output, name


def test_templates_are_copied_for_jupyterlab(tmp_path):
    r = invoke("templates", str(tmp_path / "nb"))
    assert r.exit_code == 0
    names = sorted(p.name for p in (tmp_path / "nb").glob("*.ipynb"))
    assert names[0] == "01_define.ipynb" and "09_test.ipynb" in names
    r = invoke("templates", str(tmp_path / "nb"))  # a second copy keeps the user's edits
    assert "kept" in r.output


@pytest.fixture
def data_dir(tmp_path):
    from palmerpenguins import load_penguins
    df = load_penguins()
    df.to_csv(tmp_path / "penguins.csv", index=False)
    df.assign(one="x").to_csv(tmp_path / "one_class.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("a,b\n")
    (tmp_path / "broken.parquet").write_text("this is not parquet")
    (tmp_path / "data.xlsx").write_text("not supported")
    return tmp_path


BAD = [
    # (parameters, what the message must say)
    (["-p", "target", "mass"], "The columns are: species, island"),
    (["-p", "data", "{d}/missing.csv"], "No data file at"),
    (["-p", "data", "{d}/empty.csv"], "is empty"),
    (["-p", "data", "{d}/header_only.csv"], "has 0 rows"),
    (["-p", "data", "{d}/broken.parquet"], "Could not read"),
    (["-p", "data", "{d}/data.xlsx"], "is not supported"),
    (["-p", "task", "clasify"], "Did you mean 'classification'"),
    (["-p", "metric", "precision"], "must be one of 'auto', 'accuracy'"),
    (["-p", "metric", "rmse"], "for classification"),
    (["-p", "data", "{d}/one_class.csv", "-p", "target", "one"], "single class"),
    (["-p", "task", "regression"], "is not numeric"),
    (["-p", "targt", "species"], "Unknown parameter 'targt' (did you mean 'target'?)"),
    (["-p", "seed", "many"], "must be of type int"),
    (["-p", "outliers", "cut"], "must be one of 'flag', 'clip', 'drop', 'none'"),
    (["-p", "search", "grd"], "Did you mean 'grid'"),
    (["-p", "drop_columns", "beak"], "names 'beak'"),
    (["--from", "nowhere"], "There is no stage 'nowhere'"),
    (["--from", "05", "--to", "02"], "comes before"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_refused_before_any_kernel_starts(data_dir, tmp_path, args, message):
    out = tmp_path / "run"
    r = invoke("run", "--out", str(out), *[a.format(d=data_dir) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert not list(out.glob("*.ipynb")), "no stage may run when the parameters are bad"


def test_bad_params_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("- just\n- a list\n")
    r = invoke("run", "--params", str(f))
    assert r.exit_code == 2 and "must hold a mapping" in r.output
    r = invoke("run", "--params", str(tmp_path / "none.yaml"))
    assert r.exit_code == 2 and "No parameters file" in r.output


def test_wheel_ships_the_templates(tmp_path):
    """`pip install .` must give a working kit, templates included."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(Path(__file__).parents[1])], check=True)
    wheel = next(tmp_path.glob("mlkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for stage in ["01_define", "02_prepare", "09_test"]:
        assert f"mlkit/templates/{stage}.ipynb" in names
    assert "mlkit/cli.py" in names
    # installed from the wheel (not this checkout), the kit runs from an empty folder with its own templates
    site, empty = tmp_path / "site", tmp_path / "empty"
    empty.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import mlkit.runner as r; print(r.templates_dir()); from mlkit.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, "run", "--out", "r", "--to", "01_define"], cwd=empty, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(site / "mlkit" / "templates")
    assert json.loads((empty / "r" / "run.json").read_text())["status"] == "succeeded"
