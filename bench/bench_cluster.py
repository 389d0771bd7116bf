"""Benchmark clustering: the penguins clustering chain against the classification chain, and (optionally) at 1,000,000 rows.

Both penguins chains run in this one command, one after the other, as `mlkit run --no-cache` with the kit's defaults
(`-p task clustering` for the clustering one; the species is then the outside label): the wall times, each stage's
seconds and the ratio (target: clustering at most 1.2x the classification chain). With `--large`, the clustering chain
also runs on the generated 1,000,000-row table of the scale issue (`tables.make_table`, its `target` kept as the outside
label; target: at most 10 minutes), which exercises mini-batch k-means and sampled fitting above the sizes that
`mlkit.clusters` states (MINIBATCH_ROWS, WARD_ROWS, HDBSCAN_ROWS, GMM_ROWS) and the sampled comparison and tuning.

    python bench/bench_cluster.py                  # penguins: clustering vs classification
    python bench/bench_cluster.py --large          # and the clustering chain on 1,000,000 rows
    python bench/bench_cluster.py --large --rows 100000 --no-penguins   # a smaller table only, for a quick look

On a shared machine one run's time is noisy (a stage that does the same work in both chains can take twice as long
once), so the penguins chains run `--repeat` times each, alternating, and the fastest of each is compared.
"""
from __future__ import annotations
import argparse, functools, os, shutil, sys, tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import run_chain as run_on_table
from tables import write_table
import bench_scale

print = functools.partial(print, flush=True)


def run(out: Path, extra: list) -> dict:
    "The chain on penguins (the default data) with `extra` parameters: wall seconds, peak memory, run record."
    if out.exists(): shutil.rmtree(out)
    import json, subprocess, time
    t0 = time.perf_counter()
    p = subprocess.run([bench_scale.MLKIT, "run", "--no-cache", "--out", str(out), *extra], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0: print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
    rec = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    return {"wall": wall, "rec": rec, "rc": p.returncode}


def show(name: str, r: dict):
    stages = {s["name"]: s for s in r["rec"].get("stages", [])}
    test = (r["rec"].get("metrics") or {}).get("test", {})
    print(f"{name}: {r['rec'].get('status', 'no run.json')} (exit {r['rc']}) in {r['wall']:.1f} s; test "
          + ", ".join(f"{k} {v:.3f}" for k, v in test.items() if isinstance(v, (int, float))))
    print("  " + "  ".join(f"{k[:2]} {s.get('seconds', 0):.1f}s" for k, s in stages.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", action="store_true", help="also run the clustering chain on the generated table")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated table (with --large)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each penguins chain, alternating; the fastest counts")
    ap.add_argument("--no-penguins", action="store_true", help="skip the penguins comparison")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mlkit-bench-cluster"),
                    help="where the runs (and the generated table) go")
    a = ap.parse_args()
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    if not a.no_penguins:
        clfs, clus = [], []
        for i in range(a.repeat):
            clfs.append(run(work / "penguins-classification", []))
            show(f"penguins, classification (run {i + 1})", clfs[-1])
            clus.append(run(work / "penguins-clustering", ["-p", "task", "clustering"]))
            show(f"penguins, clustering (run {i + 1})", clus[-1])
        clf, clu = min(clfs, key=lambda r: r["wall"]), min(clus, key=lambda r: r["wall"])
        print(f"\nfastest of {a.repeat}: classification {clf['wall']:.1f} s, clustering {clu['wall']:.1f} s: "
              f"clustering / classification {clu['wall'] / clf['wall']:.2f}x the time (target: at most 1.2x)")
    if a.large:
        data = write_table(work / f"table-classification-{a.rows}.parquet", a.rows)
        out = work / f"run-clustering-{a.rows}"
        if out.exists(): shutil.rmtree(out)
        # the table's features are independent noise, so it has no clusters to find (silhouette near 0): the success
        # threshold is set to 0 so that 10_deploy and 11_monitor run on it too, as they would for a clustering that passed
        r = run_on_table(data, out, ["-p", "task", "clustering", "-p", "success_threshold", "0"])
        print()
        show(f"{a.rows:,} rows, clustering", r)
        print(f"  peak memory of the process tree {r['peak'] / 1e9:.2f} GB; target: at most 600 s -> "
              f"{'met' if r['wall'] <= 600 and r['rc'] == 0 else 'MISSED'}")


if __name__ == "__main__":
    main()
