"""Benchmark `mlkit monitor` on a large current batch.

Builds a small penguin classifier package, generates current batches of 10,000 (the baseline) and
1,000,000 rows with `simulate_batch` (half a standard deviation of shift, so drift is really found),
runs `run_monitor` on each in this process (monitor.json and the HTML report with plots included),
and prints the seconds per step and the ratio to the baseline.

    .venv/bin/python bench/bench_monitor.py [--rows 1000000] [--baseline 10000] [--labels] [--reference-rows N]

With --labels the batches keep the target, so performance is scored as well. With --reference-rows the
reference is a simulated batch of N rows instead of the package's training rows (above 1,000 rows the
tests switch from p-values to Wasserstein and Jensen-Shannon distances).
"""
from __future__ import annotations
import argparse, tempfile, time
from pathlib import Path


def build_package(out_dir: Path) -> Path:
    "A penguin species classifier (logistic regression), packaged with mlkit."
    from palmerpenguins import load_penguins
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from mlkit.package import build_package as build
    from mlkit.problem import define_problem
    df = load_penguins().dropna(subset=["species"]).reset_index(drop=True)
    X, y = df.drop(columns="species"), df.species
    pipe = make_pipeline(make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(X.select_dtypes("number").columns)),
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), ["island", "sex"])),
        LogisticRegression(max_iter=1000)).fit(X, y)
    return build(pipe, X, y, define_problem(df, "penguins", "species"), {"validation": {}, "test": {}}, out_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the large current batch")
    ap.add_argument("--baseline", type=int, default=10_000, help="rows in the baseline batch")
    ap.add_argument("--labels", action="store_true", help="keep the target, so performance is scored too")
    ap.add_argument("--reference-rows", type=int, default=0, help="simulate a reference of this many rows (0: the package's)")
    a = ap.parse_args()
    from mlkit.drift import simulate_batch
    from mlkit.monitor import run_monitor
    from mlkit.package import load_package
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        pkg = load_package(build_package(d / "model"))
        ref = pkg.reference()
        reference = simulate_batch(ref, a.reference_rows, target="species", seed=2) if a.reference_rows else None
        run_monitor(pkg, simulate_batch(ref, 500, target="species", seed=0), out_dir=d / "warmup")  # imports, fonts
        results = {}
        for n in (a.baseline, a.rows):
            t = time.perf_counter()
            batch = simulate_batch(ref, n, shift=0.5, mix=0.1, target="species", seed=1)
            if not a.labels: batch = batch.drop(columns="species")
            made = time.perf_counter() - t
            t = time.perf_counter()
            res = run_monitor(pkg, batch, reference=reference, out_dir=d / f"mon-{n}")
            took = time.perf_counter() - t
            results[n] = took
            steps = ", ".join(f"{k} {v:.2f}" for k, v in res["timings"].items() if k != "total")
            print(f"{n:>9,} current rows vs {res['reference']['rows']:,} reference rows: run_monitor {took:6.2f} s "
                  f"(batch generated in {made:.2f} s) | {steps} | verdict {res['verdict']!r}, "
                  f"{res['n_drifted']} of {res['n_columns']} columns drifted")
        base, big = results[a.baseline], results[a.rows]
        print(f"ratio: {big / base:.1f}x the time for {a.rows / a.baseline:.0f}x the rows "
              f"({big / a.rows * 1e6:.2f} µs per row at {a.rows:,}; {base / a.baseline * 1e6:.2f} µs per row at {a.baseline:,})")


if __name__ == "__main__":
    main()
