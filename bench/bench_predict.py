"""Benchmark `mlkit predict` on long files: wall time and peak memory for 100,000 and 1,000,000 rows.

Builds a penguin classifier in a temporary folder, makes the inputs by sampling its training rows (with a little
noise on the numbers; generated here, nothing downloaded), and runs the real command, `mlkit predict`, once per
input in a subprocess of its own. The peak memory is that subprocess's maximum resident set size (`os.wait4`'s
rusage, so each run is measured alone). The model and the inputs are made in a helper process, so that this one
stays small: on Linux a child's peak memory counts what it inherited from its parent before `exec`. With chunks of 100,000 rows the 1,000,000-row file should take about ten
times as long as the 100,000-row one and about the same memory (the target: the ratio of peak memory near 1); the
last line scores the 1,000,000 rows in one chunk, for contrast (what reading the file whole costs).

    .venv/bin/python bench/bench_predict.py                      # CSV in, CSV out
    .venv/bin/python bench/bench_predict.py --format parquet     # Parquet in, Parquet out
    .venv/bin/python bench/bench_predict.py --sizes 20000 200000 --chunk-rows 20000 --no-contrast   # a quicker run
"""
from __future__ import annotations
import argparse, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path


def make_input(pkg, n: int, path: Path, seed: int = 0):
    "`n` rows like the package's training rows: sampled with replacement, numbers jittered by 1% (missing values kept)."
    import numpy as np
    ref = pkg.reference(columns=pkg.schema.names)
    rng = np.random.default_rng(seed)
    df = ref.sample(n, replace=True, random_state=seed).reset_index(drop=True)
    for c in df.select_dtypes("float").columns:
        df[c] = (df[c] * rng.normal(1, 0.01, n)).round(2)
    df.to_csv(path, index=False) if path.suffix == ".csv" else df.to_parquet(path, index=False)
    return path


def run_predict(model: Path, inp: Path, out: Path, chunk_rows: int) -> dict:
    "Run `mlkit predict` in a subprocess: its wall time, peak resident memory (MB), status and last progress line."
    cmd = [str(Path(sys.executable).parent / "mlkit"), "predict", str(model), str(inp), "--out", str(out), "--chunk-rows", str(chunk_rows)]
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0); lines = err.read().decode(errors="replace").strip().splitlines()
    if proc.returncode != 0: raise SystemExit(f"mlkit predict failed ({proc.returncode}):\n" + "\n".join(lines[-20:]))
    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"seconds": wall, "peak_mb": mb, "last": next((l for l in reversed(lines) if l.startswith("scored")), "")}


def make(model: str, *inputs: str):
    "The helper process: build the package at `model`, and write each input given as ROWS=PATH."
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from conftest import build_penguin_package
    from mlkit.package import load_package
    pkg = load_package(build_penguin_package(Path(model)))
    for spec in inputs:
        n, path = spec.split("=", 1)
        make_input(pkg, int(n), Path(path))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--make"]: return make(*argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--format", choices=["csv", "parquet"], default="csv", help="the input's and the output's format")
    ap.add_argument("--no-contrast", action="store_true", help="skip scoring the large file in one chunk")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="mlkit-bench-predict-"))
    try:
        model = tmp / "model"
        small, large = args.sizes
        paths = {n: tmp / f"rows{n}.{args.format}" for n in (small, large)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--make", str(model), *(f"{n}={p}" for n, p in paths.items())], check=True)
        print(f"made the model and {', '.join(f'{n:,}' for n in paths)} rows of {args.format} in {time.perf_counter() - t0:.0f} s "
              f"({', '.join(f'{p.stat().st_size / 1e6:.0f} MB' for p in paths.values())})", flush=True)
        meta = json.loads((model / "metadata.json").read_text())
        runs = []
        for n, chunk in [(small, args.chunk_rows), (large, args.chunk_rows)] + ([] if args.no_contrast else [(large, large)]):
            inp = paths[n]
            r = run_predict(model, inp, tmp / f"scored{n}_{chunk}.{args.format}", chunk)
            runs.append({"rows": n, "chunk_rows": chunk, **r})
            print(f"  {n:>9,} rows, chunks of {chunk:>9,}: {r['seconds']:6.1f} s, peak memory {r['peak_mb']:6.0f} MB "
                  f"({n / r['seconds']:,.0f} rows/s)   [{r['last']}]", flush=True)
        a, b = runs[0], runs[1]
        import platform
        print(f"\nmodel: {meta['estimator']} ({meta['task']}, {len(meta['schema']['columns'])} inputs); {args.format} in and out; "
              f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}")
        print(f"{large:,} vs {small:,} rows in chunks of {args.chunk_rows:,}: time x{b['seconds'] / a['seconds']:.2f} "
              f"(rows x{large / small:.0f}), peak memory x{b['peak_mb'] / a['peak_mb']:.2f} (target: near 1)")
        if not args.no_contrast:
            c = runs[2]
            print(f"{large:,} rows in one chunk (the file read whole): peak memory {c['peak_mb']:.0f} MB, "
                  f"x{c['peak_mb'] / b['peak_mb']:.2f} the chunked run's")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
