"""`mlkit sweep` on a real Dask cluster: a scheduler and two workers started as separate processes on loopback
(`dask scheduler`, `dask worker`), never an in-process cluster.

- A four-variant sweep over 05-08 parameters (`candidates`, `n_iter`) on penguins, stopped with SIGINT after its
  first variant finished, then run again: the finished runs are untouched, only the rest run, and every variant's
  metrics equal those of the same parameters run one by one with `mlkit run` (on a stage cache of their own).
- A worker killed (its whole process group, SIGKILL) while it holds a variant: no finished run is lost, and
  sweep.json and the progress line say what happened to the variant it held.
- Bad grids are refused before any work, naming the variant and the parameter; an unreachable scheduler is
  refused within 10 s.
"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import FAST

BIN = Path(sys.executable).parent
MLKIT, DASK = str(BIN / "mlkit"), str(BIN / "dask")
GRID = {"params": dict(FAST), "grid": {"candidates": ["linear,tree", "tree"], "n_iter": [2, 3]}}


def start_cluster(folder: Path, env: dict, workers=("A", "B")) -> dict:
    "A scheduler and named workers (one thread each), each a process in a session of its own; its address and processes."
    folder.mkdir(parents=True, exist_ok=True)
    sched = folder / "scheduler.json"
    def start(name, *args):
        log = open(folder / f"{name}.log", "w")
        return subprocess.Popen([DASK, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=folder, env=env, start_new_session=True)
    procs = {"scheduler": start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                "--scheduler-file", str(sched))}
    deadline = time.time() + 60
    while not sched.exists() and time.time() < deadline: time.sleep(0.2)
    address = json.loads(sched.read_text())["address"]
    for n in workers:
        procs[n] = start(n, "worker", "--scheduler-file", str(sched), "--nworkers", "1", "--nthreads", "1", "--name", n,
                         "--no-dashboard")
    from distributed import Client
    with Client(address, timeout="20s") as c: c.wait_for_workers(len(workers), timeout=120)
    return {"address": address, "procs": procs}


def stop_cluster(cluster: dict):
    for p in cluster["procs"].values():
        try: os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError: pass
    for p in cluster["procs"].values():
        try: p.wait(30)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()


@pytest.fixture
def env(tmp_path):
    "The environment of the cluster and the sweep: a stage cache of their own, empty (the sweep runs cold)."
    return {**os.environ, "MLKIT_CACHE": str(tmp_path / "sweep-cache")}


@pytest.fixture
def cluster(tmp_path, env):
    c = start_cluster(tmp_path / "dask", env)
    yield c
    stop_cluster(c)


def write_grid(folder: Path, grid: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grid.yaml").write_text(yaml.safe_dump(grid))
    return folder / "grid.yaml"


def sweep_json(out: Path) -> dict:
    try: return json.loads((out / "sweep.json").read_text())
    except (OSError, ValueError): return {}


def wait_for(what, timeout=600, every=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = what()
        if got: return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what.__doc__ or what}")


def test_sweep_on_a_real_cluster_stops_resumes_and_equals_runs_one_by_one(tmp_path, cluster, env):
    grid = write_grid(tmp_path, {**GRID, "variants": [{**FAST, "candidates": "tree", "n_iter": 3}]})  # a duplicate
    out = tmp_path / "sweep"
    cmd = [MLKIT, "sweep", str(grid), "--out", str(out), "--scheduler", cluster["address"]]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def one_finished():
        "a variant that succeeded"
        return [v for v in sweep_json(out).get("variants", []) if v.get("status") == "succeeded"]
    finished = wait_for(one_finished)
    kept = {v["id"]: (out / v["id"] / "run.json").read_text() for v in finished}
    first.send_signal(signal.SIGINT)
    o, e = first.communicate(timeout=300)
    assert first.returncode == 130, e
    assert "stopped by SIGINT" in e and "Run the rest with: mlkit sweep" in e
    assert "4 variants (1 duplicate run once)" in e
    rec = sweep_json(out)
    assert rec["status"] == "interrupted"
    assert rec["shared"]["stages"] == ["01_define", "02_prepare", "03_features", "04_split"]
    for v in rec["variants"]:  # each one's state is told: finished, stopped where it stood, or never started
        assert v["status"] in ("succeeded", "interrupted", "not run"), v
        if v["status"] == "interrupted":  # resumed from where it stood; run whole when the signal came before its first stage
            own = out / v["id"] / "run.json"
            stages = json.loads(own.read_text())["stages"] if own.exists() else []
            done = [s["name"] for s in stages if s["status"] in ("succeeded", "cached", "skipped")]
            assert v["resume"].startswith("mlkit run --out ") and ("--from" in v["resume"]) == bool(done), (v, done)
    for vid, text in kept.items(): assert json.loads(text)["status"] == "succeeded"
    n_done = sum(v["status"] == "succeeded" for v in rec["variants"])

    # the same sweep again: only what is missing runs; the finished runs are not touched
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert f"4 variants (1 duplicate run once), {n_done} already done" in again.stderr
    for vid, text in kept.items(): assert (out / vid / "run.json").read_text() == text
    rec = sweep_json(out)
    assert rec["status"] == "succeeded" and len(rec["variants"]) == 4
    assert all(v["status"] == "succeeded" for v in rec["variants"])
    for v in rec["variants"]:  # the variants' own runs took 01-04 from the shared stages
        stages = json.loads((out / v["id"] / "run.json").read_text())["stages"]
        assert [s["status"] for s in stages[:4]] == ["cached"] * 4, v["label"]
    # the table, best first by the headline metric, printed and kept
    table = again.stdout.splitlines()
    assert table[0].split()[:3] == ["run", "started", "status"] and len(table) == 5
    scores = [float(l.split()[-1]) for l in table[1:]]
    assert scores == sorted(scores, reverse=True)
    assert (out / "runs.md").read_text().count("\n") == 6 and (out / "runs.csv").exists()

    # the same variants one by one with `mlkit run`, on a stage cache of their own
    alone_env = {**os.environ, "MLKIT_CACHE": str(tmp_path / "alone-cache")}
    for v in rec["variants"]:
        args = [a for n, val in v["params"].items() for a in ("-p", n, json.dumps(val))]
        r = subprocess.run([MLKIT, "run", "--out", str(tmp_path / "alone" / v["id"]), *args], env=alone_env,
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        alone = json.loads((tmp_path / "alone" / v["id"] / "run.json").read_text())
        swept = json.loads((out / v["id"] / "run.json").read_text())
        assert alone["params"] == {**swept["params"], "run_dir": alone["params"]["run_dir"]}
        assert swept["metrics"] == alone["metrics"], v["label"]
        assert swept["headline"] == alone["headline"], v["label"]


def test_a_worker_killed_mid_sweep_loses_no_finished_run_and_the_sweep_says_what_happened(tmp_path, cluster, env):
    grid = write_grid(tmp_path, GRID)
    out = tmp_path / "sweep"
    proc = subprocess.Popen([MLKIT, "sweep", str(grid), "--out", str(out), "--scheduler", cluster["address"]],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def held_by_a():
        "a succeeded variant, and one that worker A is running in 05_select or later"
        rec = sweep_json(out)
        done = [v for v in rec.get("variants", []) if v.get("status") == "succeeded"]
        for log in (out / "logs").glob("*.log") if done else []:
            run = out / log.stem / "run.json"
            starts = [l for l in log.read_text().splitlines() if l.startswith("mlkit sweep:")]
            if log.stem == "shared" or not run.exists() or "on worker A " not in starts[-1]: continue
            r = json.loads(run.read_text())
            if r["status"] == "running" and len(r["stages"]) >= 5: return done, log.stem
        return None
    done, victim = wait_for(held_by_a, every=0.2)
    kept = {v["id"]: (out / v["id"] / "run.json").read_text() for v in done}
    os.killpg(cluster["procs"]["A"].pid, signal.SIGKILL)  # the worker, its nanny and the `mlkit run` it started
    o, e = proc.communicate(timeout=900)
    for vid, text in kept.items():  # no finished run lost or changed
        assert (out / vid / "run.json").read_text() == text
        assert json.loads(text)["status"] == "succeeded"
    entry = next(v for v in sweep_json(out)["variants"] if v["id"] == victim)
    line = next(l for l in e.splitlines() if entry["label"] + " " in l and l.startswith("["))
    if entry["status"] == "succeeded":  # Dask gave the task to worker B, which resumed the variant
        assert proc.returncode == 0, e
        assert entry["worker"].startswith("B") and "an earlier attempt was interrupted" in entry["note"], entry
        assert "resumed from" in line and "earlier attempt was interrupted" in line
        rec = json.loads((out / victim / "run.json").read_text())
        assert rec["status"] == "succeeded"
    else:  # or it was recorded as lost, with the command that finishes it
        assert proc.returncode == 1, e
        assert entry["status"] in ("lost", "interrupted", "failed") and entry["resume"], entry
        assert entry["status"] in line


def run_cli(args, **kw):
    from mlkit.cli import main
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


@pytest.mark.parametrize("grid, says", [
    ({"params": FAST, "grid": {"candidates": ["linear", "tree"], "n_iters": [2, 3]}},
     "Variant 1 (candidates=linear n_iters=2): Unknown parameter 'n_iters' (did you mean 'n_iter'?)"),
    ({"params": FAST, "grid": {"n_iter": [2, "three"]}},
     "Variant 2 (n_iter=three): The 'n_iter' parameter must be of type int. Got 'three' (str)."),
    ({"params": FAST, "variants": [{"candidates": "linear"}, {"candidates": "lineer"}]},
     "Variant 2 (candidates=lineer): The 'candidates' parameter must be 'all' or comma-separated names among"),
    ({"params": FAST}, "The grid makes no variant"),
    ({"params": FAST, "grid": {"n_iter": []}}, "The grid's 'n_iter' has no values"),
    ({"params": FAST, "grid": {"scheduler": ["tcp://127.0.0.1:8786"]}}, "sets 'scheduler', which a sweep does not take"),
])
def test_a_bad_grid_is_refused_before_any_work(tmp_path, grid, says):
    out = tmp_path / "sweep"
    r = run_cli(["sweep", str(write_grid(tmp_path, grid)), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert says in r.output
    assert not out.exists()  # no folder, no cluster started


def test_an_unreachable_scheduler_is_refused_within_10_seconds(tmp_path):
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    grid = write_grid(tmp_path, {"params": FAST, "grid": {"n_iter": [2, 3]}})
    t0 = time.perf_counter()
    r = run_cli(["sweep", str(grid), "--out", str(tmp_path / "s"), "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert time.perf_counter() - t0 < 10 + 5  # the checks before it read the data; the wait itself is at most 10 s
    assert r.exit_code == 2 and f"No Dask scheduler answers at 'tcp://127.0.0.1:{port}'" in r.output
    t0 = time.perf_counter()  # the same for `mlkit run -p scheduler`, before any kernel starts
    r = run_cli(["run", "--out", str(tmp_path / "r"), "-p", "scheduler", "tcp://10.255.255.1:8786"])
    assert time.perf_counter() - t0 < 10 + 5
    assert r.exit_code == 2 and "No Dask scheduler answers at 'tcp://10.255.255.1:8786'" in r.output
    assert not (tmp_path / "r").exists()


def test_a_sweep_folder_holding_another_sweep_or_other_files_is_refused(tmp_path):
    out = tmp_path / "sweep"; out.mkdir()
    (out / "notes.txt").write_text("mine")
    grid = write_grid(tmp_path, {"params": FAST, "grid": {"n_iter": [2, 3]}})
    r = run_cli(["sweep", str(grid), "--out", str(out)])
    assert r.exit_code == 2 and "is not empty and holds no sweep (no sweep.json)" in r.output
    (out / "notes.txt").unlink()
    (out / "sweep.json").write_text(json.dumps({"grid": "/elsewhere/grid.yaml", "status": "succeeded",
                                                "variants": [{"id": "0123456789"}]}))
    r = run_cli(["sweep", str(grid), "--out", str(out)])
    assert r.exit_code == 2 and "already holds a different sweep (from /elsewhere/grid.yaml, 1 variants; this grid makes 2" in r.output
