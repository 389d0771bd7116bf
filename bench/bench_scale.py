"""Benchmark the chain at size: the whole chain, 01-11, on generated 20-column tables of growing size.

For each size it runs `mlkit run --no-cache` on a table made by `tables.make_table` (nothing is downloaded) and
prints the wall time, the peak memory of the whole process tree (mlkit, its kernel server, kernels and their
workers, sampled every half second with psutil: the sum of resident sets, which counts the pages forked kernels share
with their server once per kernel, and the sum of proportional sets, which counts them once), each stage's seconds, and the test score. Then the ratios the scale issue asks
for: the largest size's time against the smallest's (target: at most 5x from 100,000 to 1,000,000 rows), and
whether the test score held up (target: the score at the largest size at least the score at the smallest).
The targets in absolute terms (10 minutes, 4 GB on the 2-core machine) are printed next to the figures.

    python bench/bench_scale.py                          # 100,000 and 1,000,000 rows, classification
    python bench/bench_scale.py --rows 20000 100000      # smaller sizes, for a quick look
    python bench/bench_scale.py --task regression
"""
from __future__ import annotations
import argparse, functools, json, os, subprocess, sys, tempfile, threading, time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from tables import write_table

MLKIT = str(Path(sys.executable).with_name("mlkit"))
print = functools.partial(print, flush=True)  # figures appear as each size finishes


def tree_memory(proc: psutil.Process) -> tuple:
    """The memory of a process and all its descendants, in bytes: the sum of their resident sets (a page shared by
    several processes, such as the kernel server's imports every kernel forked from it shares, counts once for each),
    and the sum of their proportional sets (each shared page split among its sharers: what the tree really holds)."""
    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        try: m = p.memory_full_info(); rss += m.rss; pss += getattr(m, "pss", m.rss)
        except psutil.Error: pass
    return rss, pss


def run_chain(data: Path, out: Path, extra: list) -> dict:
    "Run the chain on `data`; return wall seconds, peak tree memory, and the run record."
    cmd = [MLKIT, "run", "--no-cache", "--out", str(out), "-p", "data", str(data), "-p", "target", "target", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps, peak, done = psutil.Process(proc.pid), [0, 0], threading.Event()

    def sample():
        while not done.is_set():
            rss, pss = tree_memory(ps)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss); done.wait(0.5)
    threading.Thread(target=sample, daemon=True).start()
    log = proc.communicate()[0]
    done.set()
    wall = time.perf_counter() - t0
    rec = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    if proc.returncode != 0: print(log[-3000:], file=sys.stderr)
    return {"wall": wall, "peak": peak[0], "peak_pss": peak[1], "rec": rec, "rc": proc.returncode}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--task", choices=["classification", "regression"], default="classification")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mlkit-bench-scale"),
                    help="where the tables and runs go (tables are kept and reused)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="more run parameters")
    a = ap.parse_args()
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    extra = [x for kv in a.p for x in ("-p", *kv)] + (["-p", "task", "regression"] if a.task == "regression" else [])
    results = {}
    for n in a.rows:
        data = write_table(work / f"table-{a.task}-{n}.parquet", n, task=a.task)
        out = work / f"run-{a.task}-{n}"
        if out.exists(): import shutil; shutil.rmtree(out)
        r = run_chain(data, out, extra)
        stages = {s["name"]: s for s in r["rec"].get("stages", [])}
        h = r["rec"].get("headline") or {}
        results[n] = r
        print(f"\n{n:,} rows, {a.task}: {r['rec'].get('status', 'no run.json')} (exit {r['rc']}) in {r['wall']:.0f} s "
              f"(target: at most 600 s), peak memory of the process tree {r['peak'] / 1e9:.2f} GB resident, {r['peak_pss'] / 1e9:.2f} GB proportional (target: at most 4 GB); "
              f"test {h.get('metric')} {h.get('score')}")
        print("  " + "  ".join(f"{k[:2]} {s.get('seconds', 0):.0f}s" + ("" if s.get("status") == "succeeded" else f" ({s.get('status')})")
                               for k, s in stages.items()))
    if len(a.rows) > 1:
        lo, hi = min(a.rows), max(a.rows)
        ratio = results[hi]["wall"] / results[lo]["wall"]
        s_lo = (results[lo]["rec"].get("headline") or {}).get("score")
        s_hi = (results[hi]["rec"].get("headline") or {}).get("score")
        from mlkit.metrics import METRICS
        metric = (results[hi]["rec"].get("headline") or {}).get("metric")
        held = s_lo is not None and s_hi is not None and (s_hi >= s_lo if METRICS[metric].greater_is_better else s_hi <= s_lo)
        print(f"\n{hi:,} / {lo:,} rows: {ratio:.2f}x the time (target: at most 5x for 10x the rows); "
              f"peak memory {results[hi]['peak'] / max(results[lo]['peak'], 1):.2f}x; "
              f"test {metric} {s_lo} -> {s_hi} ({'held or improved' if held else 'WORSE'})")


if __name__ == "__main__":
    main()
