"""Benchmark the stage cache: a cold run, an unchanged re-run, and a change to 08_tune only, each as a ratio to cold.

Each case runs `mlkit run` as a user types it, against a fresh cache of its own ($MLKIT_CACHE), on penguins and on
a generated 100,000-row table (bench/tables.py; nothing is downloaded). Two figures per run: the command's wall
time (Python's start and imports included) and the run's own seconds from run.json. Each case is repeated
(`--repeat`; by default 5 rounds on penguins, whose runs are short beside this machine's noise, and 3 on the
table; each from an empty cache) and the fastest figure of each kind counts: on a busy machine single runs of the
same chain differ by several seconds, and others' work only ever slows a run down. Targets (issue 8): an unchanged re-run ≤ 0.03 ×
cold; an 08-only change ≤ the cold run's 08–11 time + 2 s (the change: `CHANGE_08` below).

    python bench/bench_cache.py [--rows 100000] [--skip-large] [--repeat N]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from tables import write_table

MLKIT = str(Path(sys.executable).with_name("mlkit"))
# The 08-only change: a setting only 08_tune declares (successive halving above this many training rows; default
# 100,000), one more than its default, so 08's key and every later one change but its search does exactly the same
# work (unless the training split holds exactly 100,001 rows): the figure is what re-running 08–11 costs, not a
# cheaper search. (Earlier versions of this bench set `n_iter` 7 instead of 10, making 08 itself ~30% cheaper.)
CHANGE_08 = ["-p", "halving_rows", "100001"]


def run(out, env, *params):
    t = time.perf_counter()
    r = subprocess.run([MLKIT, "run", "--out", str(out), *params], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode: sys.exit(f"mlkit run failed:\n{r.stderr[-3000:]}")
    return wall, json.loads((Path(out) / "run.json").read_text())


def late_seconds(cold):
    """What a cold run spent from the start of 08_tune to its end: the stages and what runs between them (their kernels,
    pages, the cache's copies, the run report), the same work an 08-only change has to redo."""
    first = next(s for s in cold["stages"] if s["name"] >= "08")
    return cold["seconds"] - first["at"] if "at" in first else sum(s["seconds"] for s in cold["stages"] if s["name"] >= "08")


def import_floor(repeat=3):
    """Seconds a fresh Python takes to import what every stage's kernel shares (`mlkit.runner.PRELOAD`, as the kernel
    server does; fastest of `repeat`): no stage can start sooner in a new `mlkit run`, and a cold run pays it before 01."""
    code = ("import gc, time; gc.disable()\nfrom mlkit.runner import PRELOAD\nfrom mlkit.kernels import import_shared\n"
            "t = time.perf_counter(); import_shared(PRELOAD); print(time.perf_counter() - t)")
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
               for _ in range(repeat))


def case(name, tmp, params, repeat):
    rounds = []
    for i in range(repeat):  # each round: its own empty cache, then the three runs one after another
        env = {**os.environ, "MPLBACKEND": "Agg", "MLKIT_CACHE": str(tmp / f"cache-{name}-{i}")}
        cold_wall, cold = run(tmp / f"{name}-cold-{i}", env, *params)
        same_wall, same = run(tmp / f"{name}-same-{i}", env, *params)
        tune_wall, tune = run(tmp / f"{name}-tune-{i}", env, *params, *CHANGE_08)
        rounds.append({"cold": cold, "cold_wall": cold_wall, "late": late_seconds(cold), "same": same, "same_wall": same_wall,
                       "tune": tune, "tune_wall": tune_wall})
    seconds = lambda r, k: r[k] if "wall" in k or k == "late" else r[k]["seconds"]  # a round's figure of one kind
    # the fastest of the rounds for each figure: on a busy machine the minimum is the figure least disturbed by others
    fig = {k: min(seconds(r, k) for r in rounds) for k in ("cold", "cold_wall", "late", "same", "same_wall", "tune", "tune_wall")}
    every = lambda k: ", ".join(f"{seconds(r, k):.1f}" for r in rounds)
    print(f"\n{name}: fastest of {repeat} round{'s' if repeat > 1 else ''} (each: {every('cold')} s cold; "
          f"08–11 {every('late')} s of it; 08-only {every('tune')} s; unchanged {every('same')} s)")
    print(f"  cold {fig['cold_wall']:.1f} s (run {fig['cold']:.1f} s); 08–11 took {fig['late']:.1f} s of it")
    waited = ", ".join(f"{next(s['at'] for s in r['tune']['stages'] if s['name'] >= '08'):.2f}" for r in rounds)
    print(f"  08-only: 08 started {waited} s into each run (its kernel waits for the kernel server's imports, "
          f"{import_floor():.2f} s in a fresh Python on this machine now; what follows is 08–11 again)")
    over = sorted(r["tune"]["seconds"] - r["late"] for r in rounds)  # each 08-only run against its own round's cold run
    print(f"  08-only over its round's cold 08–11: {', '.join(f'{o:+.1f}' for o in over)} s (median {over[len(over) // 2]:+.1f}; "
          "shown for the spread: the target below is judged on the fastest figures)")
    print(f"  {'case':<26}{'wall s':>8}{'ratio':>8}{'run s':>8}{'ratio':>8}  cached   target")
    for label, k, target in [("unchanged re-run", "same", "≤ 0.03 × cold"),
                             ("08_tune setting changed", "tune", f"≤ {fig['late'] + 2:.1f} s (08–11 cold + 2 s)")]:
        cached = sum(s["status"] == "cached" for s in rounds[0][k]["stages"])
        print(f"  {label:<26}{fig[k + '_wall']:8.2f}{fig[k + '_wall'] / fig['cold_wall']:8.3f}{fig[k]:8.2f}"
              f"{fig[k] / fig['cold']:8.3f}  {cached:>2}/{len(rounds[0][k]['stages'])}    {target}")
    ok_same = fig["same"] <= 0.03 * fig["cold"]
    ok_tune = fig["tune"] <= fig["late"] + 2
    print(f"  targets on the run's own seconds: unchanged {'met' if ok_same else 'MISSED'}; 08-only {'met' if ok_tune else 'MISSED'}"
          f"; on the command's wall time: unchanged {'met' if fig['same_wall'] <= 0.03 * fig['cold_wall'] else 'missed'},"
          f" 08-only {'met' if fig['tune_wall'] <= fig['late'] + 2 + fig['same_wall'] else 'missed'} (start-up counted once)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the generated table")
    ap.add_argument("--skip-large", action="store_true", help="only penguins")
    ap.add_argument("--repeat", type=int, default=None,
                    help="rounds of cold, unchanged and 08-only runs (default 5 on penguins, 3 on the table); the fastest of each counts")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        case("penguins", tmp, [], args.repeat or 5)
        if not args.skip_large:
            data = write_table(Path(__file__).parent / "out" / f"table_{args.rows}.parquet", args.rows)
            case(f"generated {args.rows:,} rows", tmp, ["-p", "data", str(data), "-p", "target", "target"], args.repeat or 3)


if __name__ == "__main__":
    main()
