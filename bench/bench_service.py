"""Benchmark the model service against the same model in-process.

Prints /predict latency (p50, p99) for 1 row and for 1,000 rows per request, and requests per second under
concurrency, next to the same package's in-process `ModelPackage.predict_records` (validation + prediction, what
the service runs per request) and the bare `pipeline.predict`, with the ratios. The service runs in a subprocess
on a free loopback port (uvicorn, one worker, access log off, prediction log on: a SQLite file in a temporary
folder), exactly as `mlkit serve` runs it. Every phase is bounded by a request count and a time limit.

    .venv/bin/python bench/bench_service.py                    # a penguin classifier built on the fly
    .venv/bin/python bench/bench_service.py --model runs/x/model --requests 200 --concurrency 8
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np


def percentiles(seconds: list) -> tuple:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(fn, n: int, limit: float) -> list:
    "Call `fn` up to `n` times or until `limit` seconds have passed; the seconds each call took."
    out, stop = [], time.perf_counter() + limit
    fn()  # warm up
    while len(out) < n and time.perf_counter() < stop:
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return out


def throughput(fn, total: int, workers: int, limit: float) -> tuple:
    "Run `fn` `total` times from `workers` threads (stopping at `limit` seconds): (calls done, calls per second)."
    stop = time.perf_counter() + limit
    def worker(k):
        done = 0
        for _ in range(k):
            if time.perf_counter() > stop: break
            fn(); done += 1
        return done
    share = [total // workers + (i < total % workers) for i in range(workers)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex: done = sum(ex.map(worker, share))
    return done, done / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a model package folder (default: build a penguin classifier in a temporary folder)")
    ap.add_argument("--requests", type=int, default=300, help="requests per latency measurement (1 row)")
    ap.add_argument("--big-requests", type=int, default=40, help="requests per latency measurement (1,000 rows)")
    ap.add_argument("--concurrency", type=int, default=8, help="client threads in the throughput test")
    ap.add_argument("--total", type=int, default=800, help="requests in the throughput test")
    ap.add_argument("--limit", type=float, default=20.0, help="seconds at most per phase")
    args = ap.parse_args(argv)

    import httpx, pandas as pd
    from mlkit.package import load_package
    from mlkit.serve import ServiceProcess
    tmp = Path(tempfile.mkdtemp(prefix="mlkit-bench-"))
    if args.model: model = Path(args.model)
    else:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        from conftest import build_penguin_package
        model = build_penguin_package(tmp / "model")
    pkg = load_package(model)
    ref = pkg.reference(columns=pkg.schema.names)
    big = ref.sample(1000, replace=len(ref) < 1000, random_state=0).reset_index(drop=True)
    one_rec = json.loads(ref.head(1).to_json(orient="records"))
    big_rec = json.loads(big.to_json(orient="records"))
    one_df, big_df = pkg.schema.to_pandas(one_rec), pkg.schema.to_pandas(big_rec)

    rows = []
    with ServiceProcess(model, log_url=str(tmp / "log.sqlite")) as svc, httpx.Client(base_url=svc.url, timeout=60) as c:
        def post(recs):
            r = c.post("/predict", json={"records": recs})
            assert r.status_code == 200, r.text
        for label, recs, df, n in [("1 row", one_rec, one_df, args.requests), ("1,000 rows", big_rec, big_df, args.big_requests)]:
            http = percentiles(timed(lambda: post(recs), n, args.limit))
            checked = percentiles(timed(lambda: pkg.predict_records(recs), n, args.limit))
            bare = percentiles(timed(lambda: pkg.pipeline.predict(df), n, args.limit))
            rows.append({"measure": f"latency p50, {label} (ms)", "HTTP /predict": http[0], "in-process checked": checked[0],
                         "in-process bare": bare[0]})
            rows.append({"measure": f"latency p99, {label} (ms)", "HTTP /predict": http[1], "in-process checked": checked[1],
                         "in-process bare": bare[1]})
        local = threading_local_client(svc.url)
        done, rps = throughput(lambda: local().post("/predict", json={"records": one_rec}).raise_for_status(),
                               args.total, args.concurrency, args.limit)
        _, rps_checked = throughput(lambda: pkg.predict_records(one_rec), args.total, args.concurrency, args.limit)
        _, rps_bare = throughput(lambda: pkg.pipeline.predict(one_df), args.total, args.concurrency, args.limit)
        rows.append({"measure": f"requests/s, 1 row, {args.concurrency} threads", "HTTP /predict": rps,
                     "in-process checked": rps_checked, "in-process bare": rps_bare})
    logged = len(__import__("mlkit.predlog", fromlist=["read_log"]).read_log(tmp / "log.sqlite"))

    table = pd.DataFrame(rows).set_index("measure")
    lat = table.index.str.startswith("latency")
    table["HTTP / checked"] = np.where(lat, table["HTTP /predict"] / table["in-process checked"], table["in-process checked"] / table["HTTP /predict"])
    table["HTTP / bare"] = np.where(lat, table["HTTP /predict"] / table["in-process bare"], table["in-process bare"] / table["HTTP /predict"])
    import platform, os
    print(f"model: {pkg.metadata['estimator']} ({pkg.task}, {len(pkg.schema)} inputs), version {pkg.version}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"service: uvicorn, 1 worker, loopback, prediction log on (SQLite); {logged} records logged during the run")
    print("columns: HTTP /predict = the service over loopback (checks, prediction, probabilities, logging, JSON);\n"
          "         in-process checked = ModelPackage.predict_records (the same checks, prediction and probabilities);\n"
          "         in-process bare = pipeline.predict alone (no checks, no probabilities)")
    print("ratios: how many times slower the HTTP path is (latency: HTTP/in-process; throughput: in-process/HTTP)\n")
    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 200, "display.max_columns", 10):
        print(table)
    print(f"\nthroughput test: {done} HTTP requests done")
    import shutil; shutil.rmtree(tmp, ignore_errors=True)


def threading_local_client(url):
    "One keep-alive HTTP client per thread."
    import threading, httpx
    local = threading.local()
    def get():
        if not hasattr(local, "c"): local.c = httpx.Client(base_url=url, timeout=60)
        return local.c
    return get


if __name__ == "__main__":
    main()
