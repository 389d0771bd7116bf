"""Benchmark the exercises: what their cells cost inside a run of the chain.

Runs the chain once (`mlkit run --no-cache`, on the default problem unless -p says otherwise), or reads a run folder
given as RUN_DIR, and prints for each stage its time, the time its exercise cells took (solutions and checks, from
papermill's per-cell durations in the executed notebook) and their share of the stage.

    python bench/bench_exercises.py [RUN_DIR] [-p NAME VALUE ...]
"""
import argparse, json, subprocess, sys, tempfile
from pathlib import Path

import nbformat


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", help="an existing run folder to read (default: run the chain into a new one)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = ap.parse_args()
    from mlkit.exercises import exercises
    if args.run_dir: run = Path(args.run_dir)
    else:
        run = Path(tempfile.mkdtemp(prefix="bench-exercises-")) / "run"
        mlkit = str(Path(sys.executable).with_name("mlkit"))
        subprocess.run([mlkit, "run", "--no-cache", "--out", str(run), *sum((["-p", n, v] for n, v in args.p), [])], check=True)
    record = json.loads((run / "run.json").read_text())
    print(f"{'stage':<12} {'stage s':>8} {'exercise s':>11} {'share':>7}  exercises")
    total = ex_total = 0.0
    for st in record["stages"]:
        nb = nbformat.read(run / st["notebook"], as_version=4)
        exs = exercises(nb, st["name"])
        cells = [i for e in exs for i in (*e.solutions, e.check)]
        secs = sum((nb.cells[i].metadata.get("papermill", {}).get("duration") or 0) for i in cells)
        total += st["seconds"] or 0; ex_total += secs
        print(f"{st['name']:<12} {st['seconds']:>8.2f} {secs:>11.3f} {secs / st['seconds']:>7.2%}  {len(exs)}")
    print(f"{'all':<12} {total:>8.2f} {ex_total:>11.3f} {ex_total / total:>7.2%}")


if __name__ == "__main__":
    main()
