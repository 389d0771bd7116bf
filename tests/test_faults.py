"""Faults lose nothing: `mlkit run` stopped by a signal, or a kernel killed under it, leaves no process behind
and a run.json that tells the truth, and `--from` completes the run.

Real `mlkit run` subprocesses and real signals. The chain is a small one (`MLKIT_TEMPLATES`): the real
`01_define`, then `02_hold`, which starts what real stages start (the model service through
`ServiceProcess`, as `10_deploy` does; joblib's loky workers; and a process in a session of its own, which
escapes the kernel's process group) and, while the file `hold` exists, keeps its workers busy until
stopped; then `03_after`. Every process the test causes carries `MLKIT_TEST_MARK` in its environment, so
the test can find any that outlives `mlkit run`. Waits poll run.json and the pid files the stage writes;
there are no fixed sleeps.
"""
import json, os, shutil, signal, subprocess, sys, time, uuid
from pathlib import Path

import nbformat
import psutil
import pytest

MLKIT = str(Path(sys.executable).with_name("mlkit"))
REPO_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PARAMS = 'run_dir: str = "runs/interactive"  # the run folder shared by all stages'

HOLD = '''\
import os, subprocess, sys, time
from pathlib import Path
import psutil
from joblib import Parallel, delayed
from mlkit.serve import ServiceProcess
test_dir = Path(os.environ["MLKIT_TEST_DIR"])
def note(role, pid):  # a pid file holding the process's run token, written whole
    p, deadline = psutil.Process(pid), time.monotonic() + 20
    token = p.environ().get("MLKIT_RUN_TOKEN", "")
    while not token and time.monotonic() < deadline:  # a child in the middle of exec shows no environment yet
        time.sleep(0.02); token = p.environ().get("MLKIT_RUN_TOKEN", "")
    (test_dir/f".{role}-{pid}").write_text(token)
    os.replace(test_dir/f".{role}-{pid}", test_dir/"pids"/f"{role}-{pid}")
note("kernel", os.getpid())
service = ServiceProcess(os.environ["MLKIT_TEST_MODEL"]).start()  # the model service, as 10_deploy starts it
note("service", service.proc.pid)
loose = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
note("loose", loose.pid)'''

WORK = '''\
def work(seconds):
    import os, time
    from pathlib import Path
    d, name = Path(os.environ["MLKIT_TEST_DIR"]), f"worker-{os.getpid()}"
    (d/f".{name}").write_text(os.environ.get("MLKIT_RUN_TOKEN", "")); os.replace(d/f".{name}", d/"pids"/name)
    end = time.time() + seconds
    while time.time() < end: time.sleep(0.01)
# while `hold` exists, two loky workers stay busy until stopped; otherwise they finish and stay idle,
# and the service and the loose process are left running: a careless stage
Parallel(n_jobs=2)(delayed(work)(600 if (test_dir/"hold").exists() else 0.1) for _ in range(2))'''

AFTER = 'from pathlib import Path\nPath(run_dir, "after.txt").write_text("03_after ran")'


def notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (PARAMS,) + sources]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    d = tmp_path_factory.mktemp("templates")
    shutil.copy(REPO_TEMPLATES / "01_define.ipynb", d)
    nbformat.write(notebook(HOLD, WORK), d / "02_hold.ipynb")
    nbformat.write(notebook(AFTER), d / "03_after.ipynb")
    return d


@pytest.fixture
def lab(tmp_path, templates, clf_package):
    "A folder to run in, and the environment that marks every process of the test."
    (tmp_path / "pids").mkdir()
    mark = uuid.uuid4().hex
    env = {**os.environ, "MPLBACKEND": "Agg", "MLKIT_TEMPLATES": str(templates), "MLKIT_TEST_DIR": str(tmp_path),
           "MLKIT_TEST_MODEL": str(clf_package), "MLKIT_TEST_MARK": mark}
    yield tmp_path, env, mark
    for p in marked(mark):  # never leave a process behind, even when a test fails
        try: p.kill()
        except psutil.Error: pass


def marked(mark) -> list:
    "The running processes (zombies do not count) that carry the test's mark."
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("MLKIT_TEST_MARK") == mark and p.status() != psutil.STATUS_ZOMBIE: out.append(p)
        except psutil.Error: pass
    return out


def left_behind(mark, timeout=15) -> list:
    "Wait up to `timeout` s for every marked process to end; the command lines of those still running."
    deadline = time.monotonic() + timeout
    while (left := marked(mark)) and time.monotonic() < deadline: time.sleep(0.1)
    out = []
    for p in left:
        try: out.append(" ".join(p.cmdline())[:150])
        except psutil.Error: pass
    return out


def run_json(out) -> dict:
    return json.loads((Path(out) / "run.json").read_text())


def start_holding(tmp, env, *args) -> subprocess.Popen:
    "Start `mlkit run --out run` with `02_hold` holding; return once it runs, with its service and workers."
    (tmp / "hold").touch()
    proc = subprocess.Popen([MLKIT, "run", "--no-cache", "--out", "run", *args], cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        roles = [p.name.split("-")[0] for p in (tmp / "pids").iterdir()]
        if {"kernel", "service", "loose"} <= set(roles) and roles.count("worker") >= 2:
            try: stages = run_json(tmp / "run")["stages"]
            except (OSError, ValueError): stages = []
            assert stages and stages[-1]["name"] == "02_hold" and stages[-1]["status"] == "running", stages
            tokens = {p.name: p.read_text() for p in (tmp / "pids").iterdir()}
            assert len(set(tokens.values())) == 1 and all(tokens.values()), tokens  # every one carries the run's token
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"02_hold never got going: {proc.communicate()[1][-3000:]}")


def pids(tmp, role) -> list:
    return [int(p.name.split("-")[1]) for p in (tmp / "pids").glob(f"{role}-*")]


def resume_completes(tmp, env, mark):
    "`--from` the interrupted stage completes the run with the first run's parameters, and leaves nothing behind."
    (tmp / "hold").unlink()
    r = subprocess.run([MLKIT, "run", "--no-cache", "--out", "run", "--from", "02_hold"], cwd=tmp, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = run_json(tmp / "run")
    assert rec["status"] == "succeeded"
    assert [(s["name"], s["status"]) for s in rec["stages"]] == [("01_define", "succeeded"), ("02_hold", "succeeded"),
                                                                  ("03_after", "succeeded")]
    assert rec["params"]["seed"] == 7  # given to the first run only
    assert (tmp / "run" / "after.txt").read_text() == "03_after ran"
    # 02_hold left its service, an idle loky pool and a process in a session of its own running: all stopped
    assert left_behind(mark) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_marks_run_interrupted_stops_everything_and_resumes(lab, sig):
    tmp, env, mark = lab
    proc = start_holding(tmp, env, "-p", "seed", "7")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-3000:]
    name = signal.Signals(sig).name
    # loky's resource tracker may say it removed what the killed workers left (shared memory): true, and not ours
    lines = [l for l in err.strip().splitlines() if "resource_tracker" not in l and l.strip() != "warnings.warn("]
    assert lines[0].startswith("mlkit run: stages 01_define to 03_after") and " 01_define    ok " in lines[1], err
    # then one line, and nothing else (no traceback, no log noise)
    assert lines[2:] == [f"mlkit run: interrupted by {name}; run/run.json marks the run interrupted. "
                         "Resume with: mlkit run --out run --from 02_hold"], err
    rec = run_json(tmp / "run")
    assert rec["status"] == "interrupted"
    assert [(s["name"], s["status"]) for s in rec["stages"]] == [("01_define", "succeeded"), ("02_hold", "interrupted")]
    assert rec["error"] == {"stage": "02_hold", "cell": None, "error": f"mlkit run was stopped by {name}",
                            "resume": "mlkit run --out run --from 02_hold"}
    # the kernel, its busy loky workers, the model service, the loose process and the guardian are all gone
    assert left_behind(mark) == []
    if sig == signal.SIGTERM: resume_completes(tmp, env, mark)  # SIGINT leaves the same record: resuming it once is enough


def test_sigkill_of_mlkit_is_settled_by_its_guardian(lab):
    tmp, env, mark = lab
    proc = start_holding(tmp, env, "-p", "seed", "7")
    proc.kill()
    _, err = proc.communicate(timeout=60)  # the pipes close once nothing the run started holds them
    assert proc.returncode == -signal.SIGKILL
    assert left_behind(mark) == []
    rec = run_json(tmp / "run")
    assert rec["status"] == "interrupted"
    assert [(s["name"], s["status"]) for s in rec["stages"]] == [("01_define", "succeeded"), ("02_hold", "interrupted")]
    assert rec["error"]["resume"] == "mlkit run --out run --from 02_hold"
    assert f"mlkit run (pid {proc.pid}) stopped without finishing" in rec["error"]["error"]
    assert f"mlkit guard: mlkit run (pid {proc.pid}) died; stopped" in err
    resume_completes(tmp, env, mark)


def test_kernel_killed_mid_stage_fails_the_stage_and_stops_its_processes(lab):
    tmp, env, mark = lab
    proc = start_holding(tmp, env)
    os.kill(pids(tmp, "kernel")[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-3000:]
    died = "the kernel died: it was killed by SIGKILL (most often the system ran out of memory; or someone killed it)"
    assert "stage 02_hold failed" in err and died in err
    assert "resume:   mlkit run --out run --from 02_hold" in err
    rec = run_json(tmp / "run")
    assert rec["status"] == "failed"
    assert [(s["name"], s["status"]) for s in rec["stages"]] == [("01_define", "succeeded"), ("02_hold", "failed")]
    assert rec["stages"][-1]["error"] == died
    assert rec["error"]["resume"] == "mlkit run --out run --from 02_hold"
    # the dead kernel's service, loky workers and loose process did not outlive mlkit
    assert left_behind(mark) == []


def test_a_folder_another_run_is_writing_into_is_refused(lab):
    tmp, env, mark = lab
    from mlkit.guard import process_identity
    from mlkit.core import write_json
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    try:
        write_json(tmp / "run" / "run.json", {"status": "running", "run_dir": str(tmp / "run"), "params": {},
                                              "process": process_identity(other.pid), "stages": []})
        r = subprocess.run([MLKIT, "run", "--no-cache", "--out", "run", "--from", "02_hold"], cwd=tmp, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert f"Another mlkit run is writing into 'run' (pid {other.pid}" in r.stderr
    finally:
        other.kill(); other.wait()
    # once that process is gone, the record is read as interrupted: a listing would say so
    from mlkit.guard import run_state
    assert run_state(run_json(tmp / "run")) == "interrupted"
