"""Teaching with the kit: the exercises in every template, the learners' copies, a workshop that starts mid-chain,
the self-check, nbgrader's view of the copies, bad input, and a learner's notebook in JupyterLab in a real browser.

The solution templates run with every check passing wherever the chain runs (test_chain, the session's fast chain):
a failing check cell fails its stage. Here, a workshop made once for the module (the fast chain's settings, starting at
05_select) serves the checkpoint, self-check and CLI tests. The nbgrader test runs in the side environment
`.venv-nbgrader` (`make grading`, part of `make test`); in the kit's own environment it skips and the schema's
documented keys are checked instead. The browser test uses Debian's Chromium driven by Playwright (as
test_runs.py does) and keeps its screenshot in test-output/."""
from __future__ import annotations
import json, os, shutil, socket, subprocess, sys, time
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbclient.exceptions import CellExecutionError

from conftest import FAST
from mlkit.cli import main
from mlkit.exercises import (exercises, workshop_copy, solution_lines, restore_solutions, set_defaults, execute,
                             read_results, STUB)
from mlkit.stages import stage_names, template

STAGES = stage_names()
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", shutil.which("chromium") or "") if p and Path(p).exists()), None)


def read(stage):
    return nbformat.read(template(stage), as_version=4)


@pytest.fixture(scope="module")
def workshop(cold, store, tmp_path_factory):
    """A workshop on the fast chain's settings, starting at 05_select: (folder, what write_workshop returned).

    Its reference run comes from the session's stage cache, where the fast chain (`cold`) ran the same solutions."""
    from mlkit.workshop import write_workshop
    d = tmp_path_factory.mktemp("workshop") / "class"
    return d, write_workshop(d, dict(FAST), start="05_select", cache=store, echo=lambda s: None)


# --- the exercises and the learners' copies, every template (no kernel) ---

# nbgrader's cell metadata, schema version 3, as its documentation ("JSON Metadata Format") gives it
NBGRADER_KEYS = {"schema_version", "grade", "solution", "locked", "task", "grade_id", "points"}


@pytest.mark.parametrize("stage", STAGES)
def test_the_student_copy_keeps_no_solution_line_and_carries_nbgraders_metadata(stage):
    nb = read(stage)
    exs = exercises(nb, stage)
    assert 1 <= len(exs) <= 3, f"{stage}: {len(exs)} exercises"
    student = workshop_copy(nb, stage)
    code = [l.strip() for c in student.cells if c.cell_type == "code" for l in c.source.splitlines()]
    hidden = [l for l in solution_lines(nb, stage) if l.strip()]
    assert hidden and not [l for l in hidden if l.strip() in code], stage
    assert "BEGIN SOLUTION" not in "\n".join(code) and all(s in code for s in STUB)
    ids = []
    for c in student.cells:
        if c.cell_type == "code": assert c.outputs == [] and c.execution_count is None
        meta = c.metadata.get("nbgrader")
        if meta is None: continue
        assert set(meta) <= NBGRADER_KEYS and meta["schema_version"] == 3 and meta["grade_id"], meta
        assert all(isinstance(meta[k], bool) for k in ("grade", "solution", "locked", "task"))
        assert ("points" in meta) == meta["grade"] and (not meta["grade"] or meta["points"] > 0)
        assert c.metadata["mlkit"]["exercise"].startswith(stage)
        if meta["grade"]:  # a check cell: locked for nbgrader, read-only in JupyterLab
            assert meta["locked"] and c.metadata["editable"] is False and c.metadata["deletable"] is False
        ids.append(meta["grade_id"])
    assert len(ids) == len(set(ids)) == sum(len(e.solutions) + 1 for e in exs)
    # with the solutions put back, the copy is the template again, cell for cell
    back = restore_solutions(student, nb)
    assert [c.source for c in back.cells] == [c.source for c in nb.cells]


@pytest.mark.parametrize("stage", STAGES)
def test_the_student_copy_fails_at_its_first_exercise(stage, cold, tmp_path):
    """Executed in a run folder holding every earlier stage, the learner's copy stops at its first exercise's stub."""
    d, _ = cold
    run = shutil.copytree(d / "cold", tmp_path / "run", ignore=shutil.ignore_patterns("*.ipynb", "report.html"))
    nb = read(stage)
    first = exercises(nb, stage)[0].solutions[0]
    student = workshop_copy(set_defaults(nb, {**FAST, "run_dir": str(run)}), stage)
    with pytest.raises(CellExecutionError) as e:
        execute(student, tmp_path, allow_errors=False)
    assert e.value.ename == "NotImplementedError", f"{stage}: {e.value.ename}: {e.value.evalue}"
    ran = [i for i, c in enumerate(student.cells) if c.cell_type == "code" and c.execution_count is not None]
    assert ran[-1] == first, f"{stage} stopped in cell {ran[-1] + 1}, not at its first exercise (cell {first + 1})"


# --- a workshop ---

def test_a_workshop_started_at_05_runs_05_to_11_in_jupyterlabs_order(workshop):
    d, ws = workshop
    rec = json.loads((d / "run" / "run.json").read_text())
    assert [s["name"] for s in rec["stages"]] == STAGES[:4] and rec["status"] == "succeeded"
    assert not (d / "run" / "05_select.ipynb").exists() and not (d / "run" / "models" / "pipeline.skops").exists()
    assert json.loads((d / "workshop.json").read_text())["status"] == "ready"
    for stage in STAGES[4:]:  # one after another, as a class would run them in JupyterLab, from student/
        student = nbformat.read(d / "student" / f"{stage}.ipynb", as_version=4)
        mine = restore_solutions(student, nbformat.read(d / "solutions" / f"{stage}.ipynb", as_version=4))
        execute(mine, d / "student", allow_errors=False)
        results = read_results(mine, stage)
        assert results and all(r["status"] == "passed" for r in results), results
    rec = json.loads((d / "run" / "run.json").read_text())
    assert [s["name"] for s in rec["stages"]] == STAGES[:4]  # 01-04 never ran again
    assert json.loads((d / "run" / "deploy.json").read_text())["deployed"] and (d / "run" / "monitoring" / "monitor.json").exists()


def test_the_workshop_folder_and_its_guide(workshop):
    d, ws = workshop
    ref = json.loads((d / "reference" / "run.json").read_text())
    assert ref["status"] == "succeeded" and [s["name"] for s in ref["stages"]] == STAGES
    guide = (d / "GUIDE.md").read_text()
    for stage in STAGES:
        nb = read(stage)
        secs = next(s for s in ref["stages"] if s["name"] == stage)
        secs = secs.get("ran_seconds") if secs["status"] == "cached" else secs["seconds"]
        assert f"| {stage} | {secs:.1f} s |" in guide and f"## {stage}: " in guide
        for e in exercises(nb, stage):
            assert f"*{e.title}* (`{e.grade_id}`): practises {e.practises.rstrip('.')}" in guide
    params = nbformat.read(d / "student" / "05_select.ipynb", as_version=4).cells[1].source
    assert "candidates: str = 'linear,tree'  #" in params and "run_dir: str = '../run'  #" in params
    # made again with the same settings: nothing is rewritten (a learner's work stays)
    mark = d / "student" / "05_select.ipynb"
    before = mark.stat().st_mtime_ns
    r = CliRunner().invoke(main, ["workshop", str(d), "--start", "05", *sum((["-p", k, json.dumps(v)] for k, v in FAST.items()), [])])
    assert r.exit_code == 0, r.output
    assert mark.stat().st_mtime_ns == before


def test_mlkit_check_reports_each_exercise(workshop):
    d, _ = workshop
    mine = d / "learner" / "05_select.ipynb"  # beside student/, so '../run' is the class's run folder
    mine.parent.mkdir(exist_ok=True)
    shutil.copy(d / "student" / "05_select.ipynb", mine)
    r = CliRunner().invoke(main, ["check", str(mine)])
    assert r.exit_code == 1 and "05_select-ex1 As good as the winner?: not attempted" in r.output, r.output
    nb = nbformat.read(mine, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("mlkit", {}).get("role") == "solution")
    cell.source = "as_good = ['baseline']"  # wrong: the chosen model is left out
    nbformat.write(nb, mine)
    r = CliRunner().invoke(main, ["check", str(mine)])
    assert r.exit_code == 1 and "failed (the chosen model (" in r.output and "is as good as itself" in r.output, r.output
    nbformat.write(restore_solutions(nb, nbformat.read(d / "solutions" / "05_select.ipynb", as_version=4)), mine)
    r = CliRunner().invoke(main, ["check", str(mine)])
    assert r.exit_code == 0 and "✓ 05_select-ex1" in r.output and "1 of 1 exercises passed." in r.output, r.output


# --- bad input ---

def test_refused_start_and_folder(tmp_path):
    r = CliRunner().invoke(main, ["workshop", str(tmp_path / "w"), "--start", "selekt"])
    assert r.exit_code == 2 and "There is no stage 'selekt'" in r.output and "Did you mean 'select'?" in r.output
    assert not (tmp_path / "w").exists()
    other = tmp_path / "other"; other.mkdir()
    (other / "workshop.json").write_text(json.dumps({"params": {"data": "iris"}, "start": "01_define"}))
    r = CliRunner().invoke(main, ["workshop", str(other), "--start", "05"])
    assert r.exit_code == 2 and "already holds a different workshop" in r.output and "start: '01_define' there, '05_select' now" in r.output
    (tmp_path / "busy").mkdir(); (tmp_path / "busy" / "notes.md").write_text("mine")
    r = CliRunner().invoke(main, ["workshop", str(tmp_path / "busy")])
    assert r.exit_code == 2 and "holds no workshop" in r.output
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), plain)
    r = CliRunner().invoke(main, ["check", str(plain)])
    assert r.exit_code == 2 and "has no exercises" in r.output


def broken_templates(tmp_path, stage, edit):
    "A folder of the templates with `edit(cells)` applied to `stage`'s; MLKIT_TEMPLATES points there."
    d = tmp_path / "templates"; d.mkdir()
    for s in STAGES: shutil.copy(template(s), d / f"{s}.ipynb")
    nb = nbformat.read(d / f"{stage}.ipynb", as_version=4)
    edit(nb.cells)
    nbformat.write(nb, d / f"{stage}.ipynb")
    return d, nb


@pytest.mark.parametrize("case", ["unpaired", "check-alone"])
def test_broken_exercises_are_refused_naming_the_template_and_cell(case, tmp_path, monkeypatch):
    def unpaired(cells):
        c = next(c for c in cells if "# END SOLUTION" in c.source)
        c.source = c.source.replace("# END SOLUTION", "# the end")
    def check_alone(cells):
        cells.insert(3, nbformat.v4.new_code_cell("# CHECK\nassert data"))
    d, nb = broken_templates(tmp_path, "03_features", unpaired if case == "unpaired" else check_alone)
    monkeypatch.setenv("MLKIT_TEMPLATES", str(d))
    r = CliRunner().invoke(main, ["workshop", str(tmp_path / "w")])
    assert r.exit_code == 2 and not (tmp_path / "w").exists(), r.output
    i = next(i for i, c in enumerate(nb.cells) if ("# BEGIN SOLUTION" in c.source if case == "unpaired" else c.source.startswith("# CHECK")))
    assert f"03_features, cell {i + 1} (id {nb.cells[i].id})" in r.output, r.output
    assert ("is never closed" if case == "unpaired" else "a check cell with no exercise before it") in r.output


# --- nbgrader's own view (the side environment .venv-nbgrader; `make grading`) ---

def test_nbgrader_validates_and_generates_the_assignment(tmp_path):
    pytest.importorskip("nbgrader", reason="nbgrader lives in the side environment .venv-nbgrader (make grading); "
                                           "here the documented keys are checked instead")
    from nbgrader.nbgraderformat import MetadataValidator
    from mlkit.workshop import write_copies
    write_copies(tmp_path / "ws", {"run_dir": "../run"})
    validator = MetadataValidator()
    for kind in ("student", "solutions"):
        for p in sorted((tmp_path / "ws" / kind).glob("*.ipynb")):
            validator.validate_nb(nbformat.read(p, as_version=nbformat.NO_CONVERT))
    # the student folder goes to `nbgrader generate_assignment` as it is; from the solutions, nbgrader's own stubs are ours
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # it runs `alembic`
    for kind in ("student", "solutions"):
        course = tmp_path / f"course-{kind}"
        shutil.copytree(tmp_path / "ws" / kind, course / "source" / "ws")
        r = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "ws", f"--CourseDirectory.root={course}"],
                           cwd=course, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    for s in STAGES:
        ours = nbformat.read(tmp_path / "ws" / "student" / f"{s}.ipynb", as_version=4)
        theirs = nbformat.read(tmp_path / "course-solutions" / "release" / "ws" / f"{s}.ipynb", as_version=4)
        sol = lambda nb: [c.source.strip() for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert sol(ours) == sol(theirs), s


# --- in a real browser ---

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium where it can)")
def test_a_student_notebook_in_jupyterlab_stops_at_its_first_exercise(tmp_path):
    pytest.importorskip("playwright", reason="playwright (the test extra) drives Chromium")
    from playwright.sync_api import sync_playwright
    from mlkit.workshop import write_copies
    write_copies(tmp_path / "ws", {"run_dir": "../run"})
    OUTPUT.mkdir(exist_ok=True)
    port = free_port()
    jupyter = Path(sys.executable).with_name("jupyter")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    log = open(tmp_path / "lab.log", "w")
    lab = subprocess.Popen([str(jupyter), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                            "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                            f"--ServerApp.root_dir={tmp_path / 'ws' / 'student'}",
                            *(["--allow-root"] if os.geteuid() == 0 else [])], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import httpx
        for _ in range(120):
            if lab.poll() is not None: break
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            time.sleep(0.5)
        else: pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic",
                                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                        "--disable-sync"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/01_define.ipynb")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
                page.wait_for_selector(".jp-StatusBar-Widget >> text=Idle", timeout=90_000)  # the kernel is up
                page.click("#jp-MainMenu >> text=Run")
                page.click(".lm-Menu-content >> text=Run All Cells")
                error = page.wait_for_selector(".jp-OutputArea-output:has-text('NotImplementedError')", timeout=120_000)
                error.scroll_into_view_if_needed()
                no_news = page.locator(".jp-Notification-Toast button:has-text('No')")  # JupyterLab asks about its news feed
                if no_news.count(): no_news.first.click()
                page.screenshot(path=str(OUTPUT / "workshop-student-01_define.png"), full_page=False)
                shown = error.inner_text()
            finally:
                browser.close()
    finally:
        lab.terminate()
        try: lab.wait(timeout=20)
        except subprocess.TimeoutExpired: lab.kill()
        log.close()
    assert "NotImplementedError" in shown
    assert (OUTPUT / "workshop-student-01_define.png").stat().st_size > 10_000
