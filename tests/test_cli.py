"""The `mlkit` command: help, version, parameters, templates and the installed wheel (bad input: test_bad_input.py)."""
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
    code = "import mlkit.stages as s; print(s.templates_dir()); from mlkit.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, "run", "--out", "r", "--to", "01_define"], cwd=empty, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(site / "mlkit" / "templates")
    assert json.loads((empty / "r" / "run.json").read_text())["status"] == "succeeded"
