"""Benchmark `mlkit sweep`: six variants over 05–08 parameters on penguins, on a two-worker LocalCluster, against
the same six runs one after another with `mlkit run`, cold.

Every case starts from an empty stage cache of its own ($MLKIT_CACHE). "One by one" is measured twice: each run
with --no-cache (every run cold: nothing shared, the issue's comparison), and the six runs sharing one cache
(what a careful user gets from the stage cache alone). Figures are wall times of the commands as a user types
them (Python's start, the cluster's start and imports included). Target (issue 9): the sweep takes at most
0.4 × the one-by-one time.

    python bench/bench_sweep.py [--workers 2]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

import yaml

MLKIT = str(Path(sys.executable).with_name("mlkit"))
FAST = {"n_iter": 3, "profile": False, "serve_smoke_test": False}
GRID = {"params": FAST, "grid": {"candidates": ["linear,tree", "tree", "linear"], "n_iter": [2, 4]}}


def timed(args, env):
    t = time.perf_counter()
    r = subprocess.run([MLKIT, *args], capture_output=True, text=True, env=env)
    if r.returncode: sys.exit(f"mlkit {args[0]} failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the sweep's LocalCluster")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "grid.yaml").write_text(yaml.safe_dump(GRID))
        env = lambda name: {**os.environ, "MPLBACKEND": "Agg", "MLKIT_CACHE": str(tmp / f"cache-{name}")}
        sweep_s, r = timed(["sweep", str(tmp / "grid.yaml"), "--out", str(tmp / "sweep"), "--workers", str(args.workers)],
                           env("sweep"))
        rec = json.loads((tmp / "sweep" / "sweep.json").read_text())
        variants = rec["variants"]
        shared = rec.get("shared") or {}
        print(f"sweep of {len(variants)} variants on {rec.get('cluster')}: {sweep_s:.1f} s "
              f"(shared stages {', '.join(shared.get('stages', [])) or 'none'}: {shared.get('seconds') or 0:.1f} s)")
        for v in variants: print(f"  {v['label']:<32} {v['seconds']:6.1f} s on worker {v['worker']}")
        cases = {}
        for name, extra in [("each cold (--no-cache)", ["--no-cache"]), ("sharing one cache", [])]:
            total = 0.0
            for v in variants:
                ps = [a for n, val in v["params"].items() for a in ("-p", n, json.dumps(val))]
                s, _ = timed(["run", "--out", str(tmp / name.split()[0] / v["id"]), *extra, *ps], env(name.split()[0]))
                total += s
            cases[name] = total
        print(f"\n  {'one by one':<26}{'wall s':>8}{'sweep / it':>12}   target ≤ 0.4")
        for name, total in cases.items():
            ratio = sweep_s / total
            verdict = ('met' if ratio <= 0.4 else 'MISSED') if "--no-cache" in name else "(for information: not the issue's comparison)"
            print(f"  {name:<26}{total:8.1f}{ratio:12.3f}   {verdict}")
        print(f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
