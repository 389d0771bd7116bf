"""Benchmark the chain: `mlkit run` against the same templates' code run in one plain Python process.

Prints the chain's wall time, each stage's time in the chain and in the floor, and the ratio.
The floor executes every template's code cells (with the same parameters papermill would
inject) one after another in a single interpreter: no kernels, no notebook I/O. Then it
times a ydata-profiling report on a 1,000,000-row frame against a 10,000-row one.

    python bench/bench_chain.py [-p NAME VALUE ...]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path


FLOOR = r'''
import json, sys, time, warnings
import matplotlib; matplotlib.use("Agg")
from IPython.display import display
params, templates = json.loads(sys.argv[1]), json.loads(sys.argv[2])
times = {}
for stage, path in templates:
    import nbformat
    nb = nbformat.read(path, as_version=4)
    code = []
    for c in nb.cells:
        if c.cell_type != "code": continue
        code.append(c.source)
        if "parameters" in c.metadata.get("tags", []):
            code.append("\n".join(f"{k} = {v!r}" for k, v in params[stage].items()))
    t = time.perf_counter()
    exec(compile("\n\n".join(code), stage, "exec"), {"__name__": "__main__", "display": display})
    import matplotlib.pyplot as plt; plt.close("all")
    times[stage] = time.perf_counter() - t
print(json.dumps(times))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--skip-profile", action="store_true", help="skip the 1,000,000-row profiling figure")
    args = ap.parse_args()
    from mlkit.runner import check_params, parse_value, template_parameters
    from mlkit.stages import stage_names, template

    given = {k: parse_value(v) for k, v in args.p}
    env = {**os.environ, "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory() as tmp:
        chain_dir, floor_dir = Path(tmp) / "chain", Path(tmp) / "floor"
        cmd = [str(Path(sys.executable).with_name("mlkit")), "run", "--no-cache", "--out", str(chain_dir)]
        for k, v in args.p: cmd += ["-p", k, v]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        chain_wall = time.perf_counter() - t
        if r.returncode: sys.exit(f"mlkit run failed:\n{r.stderr}")
        rec = json.loads((chain_dir / "run.json").read_text())

        full = check_params(given)
        full["run_dir"] = str(floor_dir)
        specs = template_parameters()
        per_stage = {s: {k: full[k] for k in specs[s] if k in full} for s in stage_names()}
        tpl = [(s, str(template(s))) for s in stage_names()]
        t = time.perf_counter()
        f = subprocess.run([sys.executable, "-c", FLOOR, json.dumps(per_stage), json.dumps(tpl)],
                           capture_output=True, text=True, env=env, cwd=tmp)
        floor_wall = time.perf_counter() - t
        if f.returncode: sys.exit(f"floor failed:\n{f.stderr[-3000:]}")
        floor = json.loads(f.stdout.strip().splitlines()[-1])

    print(f"chain on the default problem{' ' + str(given) if given else ''}: {len(rec['stages'])} stages")
    print(f"{'stage':<14}{'chain s':>9}{'floor s':>9}{'ratio':>7}")
    for s in rec["stages"]:
        fl = floor[s["name"]]
        print(f"{s['name']:<14}{s['seconds']:9.2f}{fl:9.2f}{s['seconds'] / fl:7.2f}")
    print(f"{'wall':<14}{chain_wall:9.2f}{floor_wall:9.2f}{chain_wall / floor_wall:7.2f}")
    print(f"chain / floor = {chain_wall / floor_wall:.2f}x (target: within 2x)")

    if not args.skip_profile:
        import numpy as np, pandas as pd
        from mlkit.profiling import profile_report
        rng = np.random.default_rng(0)
        def frame(n):
            return pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 100, n), "c": rng.choice(list("abcdef"), n),
                                 "d": rng.exponential(size=n), "e": rng.choice(["x", "y", None], n),
                                 "f": rng.normal(size=n).round(1), "g": rng.integers(0, 2, n), "h": rng.normal(size=n)})
        with tempfile.TemporaryDirectory() as tmp:
            profile_report(frame(1_000), Path(tmp) / "warm.html")  # imports and compiled code, once
            small = profile_report(frame(10_000), Path(tmp) / "s.html")
            t = time.perf_counter()
            big = profile_report(frame(1_000_000), Path(tmp) / "b.html")
            big_wall = time.perf_counter() - t
        print(f"profiling 10,000 rows × 8: {small['seconds']:.2f}s ({small['note']})")
        print(f"profiling 1,000,000 rows × 8: {big['seconds']:.2f}s report, {big_wall:.2f}s with sampling "
              f"({big['note']}); ratio to 10,000 rows: {big_wall / small['seconds']:.2f}x")


if __name__ == "__main__":
    main()
